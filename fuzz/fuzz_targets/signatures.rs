//! Both signature schemes: what is signed verifies (with any rotated key),
//! what is changed does not, and arbitrary headers are refused without a panic.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use wove_proto::sign::{standard_webhooks, wove_v1, Secret};

#[derive(Debug, Arbitrary)]
struct Input {
    keys: Vec<Vec<u8>>,
    url: String,
    timestamp: u64,
    nonce: String,
    body: Vec<u8>,
    /// Headers a receiver might be handed by anyone.
    headers: Vec<(String, String)>,
}

fuzz_target!(|input: Input| {
    let keys: Vec<Secret> =
        input.keys.iter().filter(|k| !k.is_empty()).take(4).cloned().map(Secret::from_bytes).collect();
    let Some(first) = keys.first() else { return };
    let now = input.timestamp;
    let target = wove_v1::target_of(&input.url);

    let signed = wove_v1::headers(first, "k", &target, now, &input.nonce, &input.body);
    let get = |name: &str| signed.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone());
    assert!(wove_v1::verify(first, "k", &target, &input.body, now, 300, get).is_ok());
    let mut changed = input.body.clone();
    changed.push(0);
    assert!(wove_v1::verify(first, "k", &target, &changed, now, 300, get).is_err());

    let signed = standard_webhooks::headers(&keys, "evt_1", now, &input.body);
    let get = |name: &str| signed.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone());
    for key in &keys {
        assert!(standard_webhooks::verify(std::slice::from_ref(key), &input.body, now, 300, get).is_ok());
    }
    assert!(standard_webhooks::verify(&keys, &changed, now, 300, get).is_err());

    let given = |name: &str| input.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone());
    let _ = wove_v1::verify(first, "k", &target, &input.body, now, 300, given);
    let _ = standard_webhooks::verify(&keys, &input.body, now, 300, given);
});
