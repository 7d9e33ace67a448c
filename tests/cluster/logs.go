package main

// Container logs as a kubelet keeps and serves them: each line stored in the CRI format
// ("TIMESTAMP STREAM F|P TEXT"), served on the kubelet port at
// /containerLogs/NAMESPACE/POD/CONTAINER, which the API server proxies for pods/log.

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// A longer line is stored in parts, as the CRI runtimes do.
const maxLogLine = 16 * 1024

type logWriter struct {
	mu sync.Mutex
	f  *os.File
}

func newLogWriter(path string) (*logWriter, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	return &logWriter{f: f}, nil
}

func (w *logWriter) copy(stream string, r io.Reader) {
	reader := bufio.NewReaderSize(r, maxLogLine)
	for {
		line, err := reader.ReadSlice('\n')
		if len(line) > 0 {
			tag := "P"
			if line[len(line)-1] == '\n' {
				tag, line = "F", line[:len(line)-1]
			}
			w.mu.Lock()
			fmt.Fprintf(w.f, "%s %s %s %s\n", time.Now().UTC().Format(time.RFC3339Nano), stream, tag, line)
			w.mu.Unlock()
		}
		if err != nil && err != bufio.ErrBufferFull {
			return
		}
	}
}

func (w *logWriter) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	_ = w.f.Close()
}

type logQuery struct {
	tailLines  int // 0: all
	limitBytes int // 0: no limit
	timestamps bool
	since      time.Time
}

// readLog returns the log's lines as a container wrote them (a part line without its
// newline), and how far into the file it read: only whole records count.
func readLog(path string, q logQuery) ([]string, int64, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, 0, err
	}
	end := strings.LastIndexByte(string(data), '\n') + 1
	var lines []string
	for _, record := range strings.Split(string(data[:end]), "\n") {
		if line, ok := q.format(record); ok {
			lines = append(lines, line)
		}
	}
	if q.tailLines > 0 && len(lines) > q.tailLines {
		lines = lines[len(lines)-q.tailLines:]
	}
	if q.limitBytes > 0 {
		total := 0
		for i, line := range lines {
			if total+len(line) > q.limitBytes {
				lines = append(lines[:i:i], line[:q.limitBytes-total])
				break
			}
			total += len(line)
		}
	}
	return lines, int64(end), nil
}

// format turns one stored record into what the client sees.
func (q logQuery) format(record string) (string, bool) {
	parts := strings.SplitN(record, " ", 4)
	if len(parts) < 4 {
		return "", false
	}
	if !q.since.IsZero() {
		if at, err := time.Parse(time.RFC3339Nano, parts[0]); err == nil && at.Before(q.since) {
			return "", false
		}
	}
	text := parts[3]
	if parts[2] == "F" {
		text += "\n"
	}
	if q.timestamps {
		text = parts[0] + " " + text
	}
	return text, true
}

func (a *agent) serveLogs(port int, cert, key string) error {
	mux := http.NewServeMux()
	mux.HandleFunc("/containerLogs/", a.handleLogs)
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") })
	server := &http.Server{Addr: fmt.Sprintf("127.0.0.1:%d", port), Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	return server.ListenAndServeTLS(cert, key)
}

func (a *agent) handleLogs(w http.ResponseWriter, req *http.Request) {
	parts := strings.Split(strings.TrimPrefix(req.URL.Path, "/containerLogs/"), "/")
	if len(parts) != 3 {
		http.Error(w, "want /containerLogs/NAMESPACE/POD/CONTAINER", http.StatusBadRequest)
		return
	}
	run := a.run(parts[0], parts[1])
	if run == nil {
		http.Error(w, fmt.Sprintf("pod %s/%s is not on this node", parts[0], parts[1]), http.StatusNotFound)
		return
	}
	log := run.logFor(parts[2])
	query := req.URL.Query()
	q := logQuery{timestamps: query.Get("timestamps") == "true"}
	q.tailLines, _ = strconv.Atoi(query.Get("tailLines"))
	q.limitBytes, _ = strconv.Atoi(query.Get("limitBytes"))
	if s, err := strconv.Atoi(query.Get("sinceSeconds")); err == nil && s > 0 {
		q.since = time.Now().Add(-time.Duration(s) * time.Second)
	}
	if t, err := time.Parse(time.RFC3339, query.Get("sinceTime")); err == nil {
		q.since = t
	}
	log.mu.Lock()
	attempts := append([]string{}, log.attempts...)
	log.mu.Unlock()
	path := ""
	if query.Get("previous") == "true" {
		if len(attempts) < 2 {
			http.Error(w, fmt.Sprintf("previous terminated container %q in pod %q not found", parts[2], parts[1]), http.StatusBadRequest)
			return
		}
		path = attempts[len(attempts)-2]
	} else if len(attempts) > 0 {
		path = attempts[len(attempts)-1]
	}
	if path == "" {
		http.Error(w, fmt.Sprintf("container %q in pod %q is waiting to start", parts[2], parts[1]), http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	lines, offset, err := readLog(path, q)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	for _, line := range lines {
		_, _ = io.WriteString(w, line)
	}
	if query.Get("follow") != "true" || q.limitBytes > 0 {
		return
	}
	a.follow(w, req, log, path, offset, q)
}

// follow streams what the container writes after the first read, until it has ended and
// every line is out, or the client goes away.
func (a *agent) follow(w http.ResponseWriter, req *http.Request, log *containerLog, path string, offset int64, q logQuery) {
	flusher, _ := w.(http.Flusher)
	f, err := os.Open(path)
	if err != nil {
		return
	}
	defer f.Close()
	// On from the first whole record not yet sent.
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return
	}
	reader := bufio.NewReaderSize(f, 4*maxLogLine)
	q.tailLines, q.since = 0, time.Time{}
	var pending strings.Builder
	for {
		if flusher != nil {
			flusher.Flush()
		}
		chunk, err := reader.ReadString('\n')
		pending.WriteString(chunk)
		if err == nil {
			if line, ok := q.format(strings.TrimSuffix(pending.String(), "\n")); ok {
				if _, err := io.WriteString(w, line); err != nil {
					return
				}
			}
			pending.Reset()
			continue
		}
		log.mu.Lock()
		running := log.running && log.attempts[len(log.attempts)-1] == path
		log.mu.Unlock()
		if !running {
			// One more read: the last lines may have landed after the EOF above.
			if rest, _ := io.ReadAll(reader); len(rest) > 0 {
				for _, record := range strings.Split(strings.TrimSuffix(pending.String()+string(rest), "\n"), "\n") {
					if line, ok := q.format(record); ok {
						_, _ = io.WriteString(w, line)
					}
				}
			}
			return
		}
		select {
		case <-req.Context().Done():
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
}
