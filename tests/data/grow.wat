;; Grows memory by 1 MiB until growth fails; without a limit it stops at 4 GiB and exits 0.
(module
  (memory (export "memory") 1)
  (func (export "_start")
    (loop $more
      (br_if $more (i32.ne (memory.grow (i32.const 16)) (i32.const -1))))))
