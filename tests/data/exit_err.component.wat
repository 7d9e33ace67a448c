;; A WASI preview 2 command component that calls the host's `wasi:cli/exit` with `err`.
(component
  (import "wasi:cli/exit@0.2.0" (instance $exit (export "exit" (func (param "status" (result))))))
  (core func $exit_lowered (canon lower (func $exit "exit")))
  (core instance $host (export "exit" (func $exit_lowered)))
  (core module $m
    (import "host" "exit" (func $exit (param i32)))
    (func (export "run") (result i32) (call $exit (i32.const 1)) (i32.const 0)))
  (core instance $i (instantiate $m (with "host" (instance $host))))
  (func $run (result (result)) (canon lift (core func $i "run")))
  (instance $inst (export "run" (func $run)))
  (export "wasi:cli/run@0.2.0" (instance $inst)))
