//! SubmitJob requests through the library's public API: what moto does not
//! validate (names, sizes, reserved variables, retry rules, the timeout floor)
//! checked here against AWS Batch's documented rules.

use wove_submit::batch::render::{is_job_name, MAX_ECS_OVERRIDES, MAX_REQUEST_BYTES};
use wove_submit::batch::retry::{action_for, MAX_RULES};
use wove_submit::batch::{self, BatchOptions, BatchRenderError};
use wove_submit::{Compression, EncodedPayload};

mod common;

fn payload_with(run_id: &str, blob: usize) -> EncodedPayload {
    let text = serde_json::json!({
        "version": 1,
        "callback_url": "http://127.0.0.1:9010/wove/events/SECRET-TOKEN",
        "run_id": run_id,
        "task_id": run_id.split(':').next().filter(|t| !t.is_empty()).unwrap_or("t"),
        "task": {"runner": "subprocess", "program": "cat", "input": {"blob": "x".repeat(blob)}},
    })
    .to_string();
    EncodedPayload::from_text(&text).unwrap()
}

fn options() -> BatchOptions {
    BatchOptions::new("wove-queue", "wove-worker:3")
}

#[test]
fn names_are_valid_for_any_run_id() {
    let long = "r".repeat(300);
    for run_id in
        ["compute:0123456789abcdef0123456789abcdef", "a.b.c:d.e", "Ünïcödé:задача", long.as_str(), ":::", "-x-:-y-"]
    {
        let request = batch::render(&payload_with(run_id, 0), &options()).unwrap();
        assert!(is_job_name(&request.job_name), "{run_id:?} -> {}", request.job_name);
        assert_eq!(request.tags["wove:run-id"].chars().count(), run_id.chars().count().min(256), "{run_id:?}");
    }
    // Deterministic, and distinct for distinct runs.
    let a = batch::render(&payload_with("a:1", 0), &options()).unwrap().job_name;
    assert_eq!(a, batch::render(&payload_with("a:1", 0), &options()).unwrap().job_name);
    assert_ne!(a, batch::render(&payload_with("a-1", 0), &options()).unwrap().job_name);
}

#[test]
fn the_payload_rides_last_in_the_environment_byte_for_byte() {
    let p = payload_with("compute:1", 10);
    let mut o = options();
    o.environment = vec![("MODE".into(), "fast".into())];
    let request = batch::render(&p, &o).unwrap();
    let env = &request.container_overrides.environment;
    assert_eq!((env[0].name.as_str(), env[0].value.as_str()), ("MODE", "fast"));
    assert_eq!((env[1].name.as_str(), env[1].value.as_str()), ("WOVE_BACKEND_PAYLOAD", p.base64()));
    assert_eq!(request.tags["wove:payload-sha256"], p.sha256());
    assert_eq!(request.payload_sha256(), Some(p.sha256()));
}

#[test]
fn the_size_guards_hold_at_and_around_both_limits() {
    // As given, never compressed: the limits themselves.
    let options = || BatchOptions { compression: Compression::Never, ..options() };
    // Find the largest blob whose overrides fit in 8192, by the rendered size itself.
    let overrides_len = |blob: usize| {
        let mut o = options();
        o.ecs_overrides_limit = false;
        let r = batch::render(&payload_with("c:1", blob), &o).unwrap();
        serde_json::to_string(&r.container_overrides).unwrap().len()
    };
    let base = overrides_len(0);
    // Each 3 blob bytes add 4 base64 bytes.
    let mut blob = (MAX_ECS_OVERRIDES - base) * 3 / 4;
    while overrides_len(blob) > MAX_ECS_OVERRIDES {
        blob -= 1;
    }
    while overrides_len(blob + 1) <= MAX_ECS_OVERRIDES {
        blob += 1;
    }
    assert!(batch::render(&payload_with("c:1", blob), &options()).is_ok(), "at the limit: fits");
    let err = batch::render(&payload_with("c:1", blob + 3), &options()).unwrap_err();
    let BatchRenderError::TooLarge { limit, size, .. } = &err else { panic!("{err}") };
    assert_eq!(*limit, MAX_ECS_OVERRIDES);
    assert!(*size > MAX_ECS_OVERRIDES);
    let text = err.to_string();
    assert!(
        text.contains("8192") && text.contains("payload_file") && text.contains("WOVE_BACKEND_PAYLOAD_FILE"),
        "{text}"
    );

    // Without the ECS limit, the request's own 30 KiB is next.
    let mut eks = options();
    eks.ecs_overrides_limit = false;
    assert!(batch::render(&payload_with("c:1", 15_000), &eks).is_ok());
    let err = batch::render(&payload_with("c:1", 24_000), &eks).unwrap_err();
    assert!(matches!(err, BatchRenderError::TooLarge { limit: MAX_REQUEST_BYTES, .. }), "{err}");

    // The way out: a payload file in the container keeps the payload out of the request.
    let mut mounted = options();
    mounted.payload_file = Some("/mnt/payloads/p.json".into());
    let request = batch::render(&payload_with("c:1", 1_000_000), &mounted).unwrap();
    let env = &request.container_overrides.environment;
    assert_eq!((env[0].name.as_str(), env[0].value.as_str()), ("WOVE_BACKEND_PAYLOAD_FILE", "/mnt/payloads/p.json"));
}

#[test]
fn a_payload_over_the_limits_travels_compressed_when_that_fits() {
    // One letter repeated: over both limits as it is, tiny compressed.
    let p = payload_with("c:1", 40_000);
    let request = batch::render(&p, &options()).unwrap();
    let env = request.container_overrides.environment.last().unwrap();
    assert_eq!(env.name, "WOVE_BACKEND_PAYLOAD");
    assert!(env.value.len() < 2_000, "{}", env.value.len());
    assert_eq!(&wove_proto::Payload::from_base64(&env.value).unwrap(), p.payload(), "the worker reads it back");
    assert_eq!(request.payload_sha256(), Some(p.sha256()), "the job names the payload as given");
    // A small one stays as it is, unless always compressed.
    let small = payload_with("c:1", 10);
    let plain = batch::render(&small, &options()).unwrap();
    assert_eq!(plain.container_overrides.environment.last().unwrap().value, small.base64());
    let always = batch::render(&small, &BatchOptions { compression: Compression::Always, ..options() }).unwrap();
    assert_ne!(always.container_overrides.environment.last().unwrap().value, small.base64());

    // Noise does not compress: still too large, and the error says compression was tried.
    let noise: String = (0..200).map(|i: u32| wove_submit::naming::sha256_hex(&i.to_le_bytes())).collect();
    let text = p.payload().clone();
    let mut json = serde_json::to_value(&text).unwrap();
    json["task"]["input"]["blob"] = noise.into();
    let noisy = EncodedPayload::from_text(&json.to_string()).unwrap();
    let err = batch::render(&noisy, &options()).map(|r| r.job_name).unwrap_err().to_string();
    assert!(err.contains("gzip-compressed") && err.contains("8192"), "{err}");
}

#[test]
fn a_many_task_payload_becomes_one_array_job() {
    let request = batch::render(&common::many(40), &options()).unwrap();
    assert_eq!(request.array_properties.as_ref().unwrap().size, 40);
    assert_eq!(request.tags["wove:tasks"], "40");
    assert!(!request.tags.contains_key("wove:task-id"));
    assert!(is_job_name(&request.job_name), "{}", request.job_name);

    // One task: no array (Batch's smallest is 2); the worker is told its index.
    let one = batch::render(&common::many(1), &options()).unwrap();
    assert!(one.array_properties.is_none());
    let env = &one.container_overrides.environment;
    assert!(env.iter().any(|v| v.name == "WOVE_WORKER_INDEX" && v.value == "0"), "{env:?}");

    // A size that does not match the tasks, or more tasks than an array holds, is refused.
    let err = batch::render(&common::many(40), &BatchOptions { array_size: Some(39), ..options() }).unwrap_err();
    assert!(
        matches!(&err, BatchRenderError::Option { option: "array_size", .. }) && err.to_string().contains("40 tasks"),
        "{err}"
    );
    let err = batch::render(&common::many(10_001), &options()).map(|r| r.job_name).unwrap_err();
    assert!(err.to_string().contains("10000"), "{err}");
}

#[test]
fn how_many_tasks_fit_one_request() {
    // The entries of `many`: short ids and inputs, the kind a map over numbers makes.
    let fits = |n: usize, compression: Compression, ecs: bool| {
        batch::render(&common::many(n), &BatchOptions { compression, ecs_overrides_limit: ecs, ..options() }).is_ok()
    };
    let most = |compression: Compression, ecs: bool| {
        let mut n = 1;
        while fits(n * 2, compression, ecs) {
            n *= 2;
        }
        let (mut low, mut high) = (n, n * 2);
        while high - low > 1 {
            let mid = (low + high) / 2;
            if fits(mid, compression, ecs) {
                low = mid
            } else {
                high = mid
            }
        }
        low
    };
    let (plain, packed) = (most(Compression::Never, true), most(Compression::Auto, true));
    let (eks_plain, eks_packed) = (most(Compression::Never, false), most(Compression::Auto, false));
    println!("tasks in one request: ECS {plain} as given, {packed} compressed; EKS {eks_plain} and {eks_packed}");
    assert!((60..200).contains(&plain), "{plain}");
    assert!(packed > 5 * plain, "{packed} vs {plain}");
    assert!(eks_plain > 3 * plain && eks_packed > 3 * packed, "{eks_plain}, {eks_packed}");
}

#[test]
fn reserved_names_and_out_of_range_options_are_refused() {
    let p = payload_with("c:1", 0);
    let cases: Vec<(BatchOptions, &str)> = vec![
        (BatchOptions { environment: vec![("AWS_BATCH_JOB_ID".into(), "x".into())], ..options() }, "environment"),
        (BatchOptions { environment: vec![("WOVE_BACKEND_PAYLOAD".into(), "x".into())], ..options() }, "environment"),
        (BatchOptions { attempts: 11, ..options() }, "attempts"),
        (BatchOptions { attempts: 0, ..options() }, "attempts"),
        (BatchOptions { attempt_duration_seconds: Some(59), ..options() }, "attempt_duration_seconds"),
        (BatchOptions { array_size: Some(1), ..options() }, "array_size"),
        (BatchOptions { array_size: Some(10_001), ..options() }, "array_size"),
        (BatchOptions { scheduling_priority: Some(10_000), ..options() }, "scheduling_priority"),
        (BatchOptions { tags: [("aws:x".into(), "y".into())].into(), ..options() }, "tags"),
        (BatchOptions { job_queue: String::new(), ..options() }, "job_queue"),
        (BatchOptions { name_prefix: "Wove!".into(), ..options() }, "name_prefix"),
        (BatchOptions { payload_file: Some("relative/p.json".into()), ..options() }, "payload_file"),
        (BatchOptions { extra: [("jobName".into(), "x".into())].into_iter().collect(), ..options() }, "extra"),
    ];
    for (o, option) in cases {
        let err = batch::render(&p, &o).unwrap_err();
        assert!(matches!(&err, BatchRenderError::Option { option: got, .. } if *got == option), "{option}: {err}");
    }
    let ok = BatchOptions { attempt_duration_seconds: Some(60), array_size: Some(2), ..options() };
    let request = batch::render(&p, &ok).unwrap();
    assert_eq!(request.timeout.unwrap().attempt_duration_seconds, 60);
    assert_eq!(request.array_properties.unwrap().size, 2);
}

#[test]
fn retry_rules_exit_on_permanent_codes_and_retry_the_rest_within_five() {
    let request = batch::render(&payload_with("c:1", 0), &BatchOptions { attempts: 3, ..options() }).unwrap();
    let strategy = &request.retry_strategy;
    assert_eq!(strategy.attempts, 3);
    assert!(strategy.evaluate_on_exit.len() <= MAX_RULES);
    for code in wove_proto::Exit::permanent_codes() {
        assert_eq!(action_for(strategy, Some(i32::from(code)), None, None), "EXIT", "{code}");
    }
    for code in [70, 75] {
        assert_eq!(action_for(strategy, Some(code), None, None), "RETRY", "{code}");
    }
    assert_eq!(action_for(strategy, Some(137), None, Some("Host EC2 (instance i-1) terminated.")), "RETRY");
}

#[test]
fn other_fields_pass_through_into_the_request() {
    let mut o = options();
    o.extra.insert("nodeOverrides".into(), serde_json::json!({"numNodes": 2}));
    o.share_identifier = Some("teamA".into());
    o.propagate_tags = true;
    let json = batch::render(&payload_with("c:1", 0), &o).unwrap().to_json();
    assert_eq!(json["nodeOverrides"]["numNodes"], 2);
    assert_eq!(json["shareIdentifier"], "teamA");
    assert_eq!(json["propagateTags"], true);
    assert!(json.get("timeout").is_none(), "unset options are left out");
}

#[test]
fn a_limit_broken_by_the_environment_names_the_environment_not_the_payload() {
    let mut o = options();
    for i in 0..3000 {
        o.environment.push((format!("VAR_{i}"), "v".into()));
    }
    let err = batch::render(&payload_with("e:1", 0), &o).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, BatchRenderError::TooLarge { .. }), "{text}");
    assert!(text.contains("3000 other environment variable(s)"), "{text}");
    assert!(text.contains("set them in the job definition"), "{text}");
    assert!(!text.contains("make the payload smaller"), "{text}");
    // And a payload too large on its own (as given: compressed, x's would fit) is still told to shrink.
    let mut as_given = options();
    as_given.compression = Compression::Never;
    let err = batch::render(&payload_with("e:1", 20_000), &as_given).unwrap_err().to_string();
    assert!(err.contains("make the payload smaller"), "{err}");
}

/// A payload of `blob` random hex characters: gzip cannot shrink it under the limits.
fn incompressible(run_id: &str, blob: usize) -> EncodedPayload {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let hex: String = (0..blob)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            char::from(b"0123456789abcdef"[(state % 16) as usize])
        })
        .collect();
    let text = serde_json::json!({
        "version": 1, "callback_url": "http://127.0.0.1:9010/wove/events/SECRET-TOKEN", "run_id": run_id,
        "task_id": "t", "task": {"runner": "subprocess", "program": "cat", "input": {"blob": hex}},
    })
    .to_string();
    EncodedPayload::from_text(&text).unwrap()
}

fn env_of(request: &batch::SubmitJobRequest) -> std::collections::BTreeMap<&str, &str> {
    request.container_overrides.environment.iter().map(|kv| (kv.name.as_str(), kv.value.as_str())).collect()
}

#[test]
fn a_payload_no_limit_holds_goes_to_the_store_by_reference() {
    let p = incompressible("big:1", 20_000);
    // Without a store: refused, naming the store as the way out.
    let err = batch::plan(&p, &options()).unwrap_err().to_string();
    assert!(err.contains("--payload-store"), "{err}");
    let mut o = options();
    o.payload_store = Some(batch::options::PayloadStore::new("s3://wove-payloads/runs"));
    let plan = batch::plan(&p, &o).unwrap();
    let object = plan.upload.expect("an object to upload");
    assert_eq!(object.bytes, p.bytes(), "the caller's bytes, as given");
    let env = env_of(&plan.request);
    assert!(!env.contains_key("WOVE_BACKEND_PAYLOAD"));
    assert_eq!(
        env["WOVE_BACKEND_PAYLOAD_URL"],
        format!("s3://wove-payloads/runs/{}/{}", plan.request.job_name, object.sha256)
    );
    assert_eq!(env["WOVE_BACKEND_PAYLOAD_SHA256"], wove_submit::naming::sha256_hex(&object.bytes));
    assert_eq!(env["WOVE_BACKEND_PAYLOAD_SIZE"], object.bytes.len().to_string());
    assert_eq!(plan.request.payload_object(), Some(env["WOVE_BACKEND_PAYLOAD_URL"]));
    assert!(serde_json::to_string(&plan.request.container_overrides).unwrap().len() <= MAX_ECS_OVERRIDES);
    // A payload that fits stays inline, unless every payload goes to the store.
    let small = payload_with("small:1", 10);
    assert!(batch::plan(&small, &o).unwrap().upload.is_none());
    o.payload_store.as_mut().unwrap().always = true;
    assert!(batch::plan(&small, &o).unwrap().upload.is_some());
}

#[test]
fn a_store_is_refused_when_it_contradicts_or_is_malformed() {
    let p = payload_with("s:1", 10);
    let mut o = options();
    o.payload_store = Some(batch::options::PayloadStore::new("s3://wove-payloads"));
    o.payload_file = Some("/mnt/p.json".into());
    assert!(batch::plan(&p, &o).unwrap_err().to_string().contains("payload_file"));
    o.payload_file = None;
    o.payload_store = Some(batch::options::PayloadStore::new("https://not-s3/x"));
    assert!(batch::plan(&p, &o).unwrap_err().to_string().contains("s3://bucket"));
    o.payload_store = Some(batch::options::PayloadStore {
        presign_seconds: Some(8 * 24 * 3600),
        ..batch::options::PayloadStore::new("s3://b-1")
    });
    assert!(batch::plan(&p, &o).unwrap_err().to_string().contains("7 days"));
    // The reference variables are the submitter's.
    let mut o = options();
    o.environment = vec![("WOVE_BACKEND_PAYLOAD_URL".into(), "s3://x/y".into())];
    assert!(batch::plan(&p, &o).is_err());
}

#[test]
fn a_request_with_a_reference_but_no_digest_is_refused() {
    let mut o = options();
    o.payload_store =
        Some(batch::options::PayloadStore { always: true, ..batch::options::PayloadStore::new("s3://b-1/p") });
    let mut request = batch::plan(&payload_with("s:2", 10), &o).unwrap().request;
    assert!(batch::render::check(&request).is_empty());
    request.container_overrides.environment.retain(|kv| kv.name != "WOVE_BACKEND_PAYLOAD_SHA256");
    let found = batch::render::check(&request);
    assert!(found.iter().any(|f| f.contains("WOVE_BACKEND_PAYLOAD_SHA256")), "{found:?}");
    // A presigned URL replaces the reference, and the sizes are checked again.
    let mut request = batch::plan(&payload_with("s:3", 10), &o).unwrap().request;
    request.set_payload_url("https://b-1.s3.amazonaws.com/p/x?X-Amz-Signature=abc", true).unwrap();
    assert!(env_of(&request)["WOVE_BACKEND_PAYLOAD_URL"].starts_with("https://"));
    assert!(request.set_payload_url(&"x".repeat(MAX_ECS_OVERRIDES), true).is_err());
}
