//! The static binary in the image's root filesystem, and nothing else.
//!
//! The rootfs is assembled by `images/assemble-rootfs` from `images/rootfs.list`,
//! exactly as the Dockerfile does, and the worker runs in it under `chroot` as
//! the image's non-root user: no libc, no NSS, no /dev, no other program. A
//! full payload then proves name resolution through the rootfs's /etc/hosts,
//! TLS, randomness (signing nonces, event ids) and delivery.
//!
//! Needs `WOVE_WORKER_STATIC_BIN` (set by scripts/test from scripts/build-static)
//! and root; skips with a message otherwise, and fails instead where
//! `WOVE_TEST_REQUIRE_IMAGES` says the machine can (CI).

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use base64::Engine as _;
use support::{b64, code, payload, private_ca, run, stderr, Receiver, Reply, TOKEN};

const HOST: &str = "wove-callback.test";

fn static_binary() -> Option<PathBuf> {
    let Some(path) = std::env::var_os("WOVE_WORKER_STATIC_BIN") else {
        support::skip_unless_required(
            "WOVE_TEST_REQUIRE_IMAGES",
            "WOVE_WORKER_STATIC_BIN is not set (scripts/test sets it from scripts/build-static)",
        );
        return None;
    };
    let ok = Command::new("chroot").args(["/", "true"]).status().is_ok_and(|s| s.success());
    if !ok {
        support::skip_unless_required("WOVE_TEST_REQUIRE_IMAGES", "chroot is not permitted here (needs root)");
        return None;
    }
    Some(path.into())
}

/// Whether an ELF file asks for a dynamic loader (a PT_INTERP program header).
fn has_interpreter(elf: &[u8]) -> bool {
    assert_eq!(&elf[..4], b"\x7fELF", "not an ELF file");
    assert_eq!(elf[4], 2, "not a 64-bit ELF");
    let u16_at = |o: usize| u16::from_le_bytes([elf[o], elf[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(elf[0x20..0x28].try_into().unwrap()) as usize;
    let (phentsize, phnum) = (u16_at(0x36), u16_at(0x38));
    (0..phnum).any(|i| u32::from_le_bytes(elf[phoff + i * phentsize..][..4].try_into().unwrap()) == 3)
}

fn assemble(root: &Path, binary: &Path) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("images/assemble-rootfs");
    let status = Command::new(script).arg(root).arg(binary).status().unwrap();
    assert!(status.success(), "assemble-rootfs failed");
}

fn in_image(root: &Path) -> Command {
    // Found through our PATH before the worker's environment is cleared.
    let chroot = ["/usr/sbin/chroot", "/usr/bin/chroot", "/sbin/chroot"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("chroot is installed (coreutils)");
    let mut cmd = Command::new(chroot);
    cmd.arg("--userspec=65532:65532").arg(root).arg("/usr/local/bin/wove-worker");
    cmd.env_clear().env("TMPDIR", "/tmp");
    cmd
}

#[test]
fn the_static_binary_runs_a_payload_in_an_empty_rootfs() {
    let Some(binary) = static_binary() else { return };
    assert!(!has_interpreter(&std::fs::read(&binary).unwrap()), "{} is dynamically linked", binary.display());

    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("rootfs");
    assemble(&root, &binary);
    // What the list does not hold, the test must not smuggle in: only files the runtime
    // itself would mount (hosts) and a CA for the loopback receiver are added.
    std::fs::write(root.join("etc/hosts"), format!("127.0.0.1 localhost\n127.0.0.1 {HOST}\n")).unwrap();
    let (ca_pem, tls) = private_ca();
    std::fs::write(root.join("tmp/ca.pem"), ca_pem).unwrap();

    let out = run(in_image(&root).arg("--version"), Duration::from_secs(30));
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains(env!("CARGO_PKG_VERSION")));

    // A WebAssembly task needs no other program in the rootfs.
    let echo = wat::parse_str(include_str!("data/echo.wat")).unwrap();
    let task = serde_json::json!({
        "runner": "wasm",
        "module": {"base64": base64::engine::general_purpose::STANDARD.encode(echo)},
        "input": {"from": "an empty image"}
    });
    let rx = Receiver::start_tls(vec![Reply::Status(204)], tls);
    let p = payload(&rx.tls_url_at(HOST, TOKEN), task);
    // Twice: ids drawn from the kernel's randomness must differ between runs.
    for _ in 0..2 {
        let out = run(
            in_image(&root)
                .env("WOVE_BACKEND_PAYLOAD", b64(&p))
                .env("WOVE_WORKER_CA_BUNDLE", "/tmp/ca.pem")
                .env("WOVE_WORKER_SIGNING_SCHEME", "standard-webhooks")
                .env("WOVE_WORKER_SIGNING_SECRET", "whsec_c3RhdGljLWltYWdlLXRlc3Q="),
            Duration::from_secs(60),
        );
        assert_eq!(code(&out), 0, "{}", stderr(&out));
    }
    let results = rx.of_type("task_result");
    assert_eq!(results.len(), 2);
    for r in &results {
        assert_eq!(r.json()["result"], serde_json::json!({"from": "an empty image"}));
        assert!(r.header("webhook-signature").is_some_and(|s| s.starts_with("v1,")), "signed");
    }
    assert_ne!(results[0].json()["event_id"], results[1].json()["event_id"], "random event ids");
}

/// The size goal of the flavour the images ship (README "Flavours", BENCHMARKS.md "Binary
/// size"): a dependency or a feature that pushes it past 20 MiB fails here, in the run that
/// adds it, not in a later measurement.
#[test]
fn the_static_binary_is_within_the_default_flavours_size_goal() {
    const GOAL: u64 = 20 * 1024 * 1024;
    let Some(binary) = static_binary() else { return };
    // The default flavour, not a smaller one passing for it: it lists the WebAssembly runner.
    let out = run(Command::new(&binary).arg("runners"), Duration::from_secs(30));
    assert!(String::from_utf8_lossy(&out.stdout).contains("wasm"), "not the default flavour: {out:?}");
    let size = std::fs::metadata(&binary).unwrap().len();
    assert!(size <= GOAL, "{} is {size} bytes, past the default flavour's goal of {GOAL}", binary.display());
}
