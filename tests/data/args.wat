;; Prints its argument and environment counts as a JSON array: [argc, envc].
(module
  (import "wasi_snapshot_preview1" "args_sizes_get" (func $args_sizes (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_sizes_get" (func $env_sizes (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  ;; 0: argc, 4: argv size, 8: envc, 12: env size; 100: "[a,e]" built from single digits
  (func (export "_start")
    (drop (call $args_sizes (i32.const 0) (i32.const 4)))
    (drop (call $env_sizes (i32.const 8) (i32.const 12)))
    (i32.store8 (i32.const 100) (i32.const 91))
    (i32.store8 (i32.const 101) (i32.add (i32.const 48) (i32.load (i32.const 0))))
    (i32.store8 (i32.const 102) (i32.const 44))
    (i32.store8 (i32.const 103) (i32.add (i32.const 48) (i32.load (i32.const 8))))
    (i32.store8 (i32.const 104) (i32.const 93))
    (i32.store (i32.const 32) (i32.const 100))
    (i32.store (i32.const 36) (i32.const 5))
    (drop (call $fd_write (i32.const 1) (i32.const 32) (i32.const 1) (i32.const 48)))))
