//! Payload decoding in every form (JSON, base64, gzip), every index of a
//! many-task payload, and every built-in runner's task description: no
//! panic, and whatever decodes survives re-encoding unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wove_proto::task::{PythonTask, SubprocessTask, WasmTask};
use wove_proto::Payload;

/// Far below the real bound, so the fuzzer spends its time on structure.
const LIMIT: usize = 1 << 20;

fuzz_target!(|data: &[u8]| {
    // The callback URL is seen before any field is checked, and only from what decodes.
    let mut seen = None;
    let decoded = Payload::decode_within(data, LIMIT, wove_proto::Form::Any, &mut |url| seen = Some(url.to_string()));
    if let Ok(payload) = &decoded {
        assert_eq!(seen.as_deref(), Some(payload.callback_url.as_str()));
    }
    let Ok(payload) = decoded else { return };
    for encoded in [payload.to_base64(), payload.to_base64_gzip()] {
        match Payload::from_base64(&encoded) {
            Ok(back) => assert_eq!(back, payload),
            Err(e) => panic!("a decoded payload failed to decode once re-encoded: {e}"),
        }
    }
    let _ = payload.check_every_task();
    let count = payload.task_count();
    // A few indexes past the end too: they must be refused, not panic.
    for index in (0..count.min(8)).chain([count, count + 1, usize::MAX]) {
        let Ok(task) = payload.clone().select(Some(index)) else {
            assert!(payload.is_many() && index >= count);
            continue;
        };
        assert!(!task.is_many());
        let _ = task.check_task();
        if let Some(spec) = &task.task {
            if let Ok(t) = spec.decode::<SubprocessTask>() {
                let _ = t.validate();
            }
            if let Ok(t) = spec.decode::<WasmTask>() {
                let _ = t.validate();
            }
            if let Ok(t) = spec.decode::<PythonTask>() {
                let _ = t.validate();
            }
        }
    }
});
