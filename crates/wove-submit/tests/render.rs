//! Rendering Jobs through the library's public API, as a Rust service would.

use base64::Engine as _;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Container, EnvVar, PodSpec};
use wove_submit::kubernetes::{self, check, Indexed, JobOptions, PayloadPlacement, RenderError, SigningSecret};
use wove_submit::{naming, Compression, EncodedPayload};

mod common;

const RUN: &str = "reverse:5d1c0a8e2f4b4c6e9a7d3b1f0e2c4a6b";

fn payload_json(extra_bytes: usize) -> String {
    serde_json::json!({
        "version": 1,
        "callback_url": "http://127.0.0.1:9010/wove/events/SECRET-TOKEN",
        "run_id": RUN,
        "task_id": "reverse",
        "task": {"runner": "subprocess", "program": "cat", "input": {"blob": "x".repeat(extra_bytes)}},
    })
    .to_string()
}

fn payload(extra_bytes: usize) -> EncodedPayload {
    EncodedPayload::from_text(&payload_json(extra_bytes)).unwrap()
}

fn options() -> JobOptions {
    JobOptions::new("registry.example/wove-worker:0.1.0")
}

fn pod(job: &Job) -> &PodSpec {
    job.spec.as_ref().unwrap().template.spec.as_ref().unwrap()
}

fn container(job: &Job) -> &Container {
    &pod(job).containers[0]
}

fn env<'a>(job: &'a Job, name: &str) -> Option<&'a EnvVar> {
    container(job).env.iter().flatten().find(|v| v.name == name)
}

#[test]
fn a_small_payload_rides_in_the_environment_byte_for_byte() {
    let p = payload(10);
    let m = kubernetes::render(&p, &options()).unwrap();
    assert!(m.payload_secret.is_none());
    assert_eq!(env(&m.job, "WOVE_BACKEND_PAYLOAD").unwrap().value.as_deref(), Some(p.base64()));
    assert!(env(&m.job, "WOVE_BACKEND_PAYLOAD_FILE").is_none());

    let name = m.name();
    assert!(naming::is_dns1123_label(name) && name.starts_with("wove-reverse-5d1c0a8e"), "{name}");
    let meta = &m.job.metadata;
    let labels = meta.labels.as_ref().unwrap();
    assert_eq!(labels["app.kubernetes.io/name"], "wove-worker");
    assert_eq!(labels["wove.dev/task"], "reverse");
    assert!(naming::is_label_value(&labels["wove.dev/run"]));
    let annotations = meta.annotations.as_ref().unwrap();
    assert_eq!(annotations["wove.dev/run-id"], RUN, "the raw id is kept");
    assert_eq!(annotations["wove.dev/payload-sha256"], p.sha256());
    assert_eq!(m.payload_sha256(), Some(p.sha256()));
}

#[test]
fn defaults_are_the_documented_ones() {
    let m = kubernetes::render(&payload(0), &options()).unwrap();
    let spec = m.job.spec.as_ref().unwrap();
    assert_eq!(spec.backoff_limit, Some(0));
    assert_eq!(spec.ttl_seconds_after_finished, Some(3600));
    assert_eq!(spec.pod_replacement_policy.as_deref(), Some("Failed"));
    assert_eq!(spec.suspend, None);
    let rules = &spec.pod_failure_policy.as_ref().unwrap().rules;
    assert_eq!(rules.iter().map(|r| r.action.as_str()).collect::<Vec<_>>(), ["Ignore", "FailJob", "Count"]);
    assert_eq!(rules[1].on_exit_codes.as_ref().unwrap().values, [3, 65, 66, 76, 78]);

    let pod = pod(&m.job);
    assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
    assert_eq!(pod.termination_grace_period_seconds, Some(30), "25 s budget + 5 s margin");
    assert_eq!(pod.automount_service_account_token, Some(false));
    let security = pod.security_context.as_ref().unwrap();
    assert_eq!((security.run_as_user, security.run_as_non_root), (Some(65532), Some(true)));

    let c = container(&m.job);
    assert_eq!(c.name, "wove");
    assert_eq!(c.command.as_deref(), Some(&["wove-worker".to_string()][..]));
    assert_eq!(env(&m.job, "WOVE_WORKER_SHUTDOWN_BUDGET").unwrap().value.as_deref(), Some("25"));
    let cs = c.security_context.as_ref().unwrap();
    assert_eq!(cs.allow_privilege_escalation, Some(false));
    assert_eq!(cs.capabilities.as_ref().unwrap().drop.as_deref(), Some(&["ALL".to_string()][..]));
}

#[test]
fn a_large_or_sensitive_payload_travels_in_a_secret() {
    for (p, why) in [(payload(40_000), "large"), (payload(10).sensitive(true), "sensitive")] {
        let m = kubernetes::render(&p, &options()).unwrap();
        let secret = m.payload_secret.as_ref().unwrap_or_else(|| panic!("{why}: no Secret"));
        assert!(env(&m.job, "WOVE_BACKEND_PAYLOAD").is_none(), "{why}");
        let file = env(&m.job, "WOVE_BACKEND_PAYLOAD_FILE").unwrap().value.clone().unwrap();
        assert_eq!(file, "/var/run/secrets/wove/payload/payload");
        let data = &secret.data.as_ref().unwrap()["payload"].0;
        // The Secret holds the JSON; its wire form (base64 of the data) is the payload's own base64.
        assert_eq!(base64::engine::general_purpose::STANDARD.encode(data), p.base64());
        assert_eq!(secret.metadata.name.as_deref(), Some(&*format!("{}-payload", m.name())));
        let volume = pod(&m.job).volumes.iter().flatten().find(|v| v.name == "wove-payload").unwrap();
        assert_eq!(volume.secret.as_ref().unwrap().secret_name, secret.metadata.name);
        let mount = container(&m.job).volume_mounts.iter().flatten().find(|v| v.name == "wove-payload").unwrap();
        assert_eq!(mount.read_only, Some(true));
        // Not yet owned: the Job's uid exists only once it is created.
        assert!(secret.metadata.owner_references.is_none());
        let mut created = m.job.clone();
        created.metadata.uid = Some("uid-1".into());
        let owned = m.owned_secret(&created).unwrap();
        let owner = &owned.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!((owner.kind.as_str(), owner.uid.as_str(), owner.controller), ("Job", "uid-1", Some(true)));
        // kubectl gets a List with the Secret first.
        let list = m.to_json();
        assert_eq!(list["kind"], "List");
        assert_eq!(list["items"][0]["kind"], "Secret");
        assert_eq!(list["items"][1]["kind"], "Job");
    }
}

#[test]
fn payloads_that_cannot_travel_are_refused_before_anything_is_sent() {
    let mut env_only = options().payload_placement(PayloadPlacement::Env);
    env_only.compression = Compression::Never;
    let err = kubernetes::render(&payload(200_000), &env_only).unwrap_err();
    assert!(matches!(err, RenderError::PayloadTooLarge { limit: 131_072, .. }), "{err}");
    let text = err.to_string();
    assert!(text.contains("MAX_ARG_STRLEN") && text.contains("Secret"), "{text}");

    // Just under the limit still fits in the environment.
    let fits = payload(97_000);
    assert!(fits.base64().len() + "WOVE_BACKEND_PAYLOAD=".len() < 131_072);
    assert!(kubernetes::render(&fits, &env_only).is_ok());

    let mut never = options();
    never.compression = Compression::Never;
    let err = kubernetes::render(&payload(1_100_000), &never).unwrap_err();
    assert!(matches!(err, RenderError::PayloadTooLarge { limit: 1_048_576, .. }), "{err}");
    assert!(err.to_string().contains("by reference"), "{err}");

    // What does not compress stays too large, and the error says compression was tried.
    let err = kubernetes::render(&noisy(3_000_000), &options()).map(|m| m.name().to_string()).unwrap_err();
    assert!(matches!(err, RenderError::PayloadTooLarge { limit: 1_048_576, .. }), "{err}");
    assert!(err.to_string().contains("even gzip-compressed"), "{err}");
}

/// A payload of `bytes` of hex noise: it compresses to about half, no better.
fn noisy(bytes: usize) -> EncodedPayload {
    let noise: String = (0..bytes / 64 + 1).map(|i| naming::sha256_hex(&i.to_le_bytes())).collect();
    let text = payload_json(0).replace(r#""blob":"""#, &format!(r#""blob":"{}""#, &noise[..bytes]));
    EncodedPayload::from_text(&text).unwrap()
}

#[test]
fn only_what_fits_nowhere_else_travels_compressed() {
    // 1.1 MB of one letter: too large for a Secret as it is, a few KiB compressed.
    let p = payload(1_100_000);
    let m = kubernetes::render(&p, &options()).unwrap();
    let data = &m.payload_secret.as_ref().unwrap().data.as_ref().unwrap()["payload"].0;
    assert!(wove_proto::gzip::is_gzip(data) && data.len() < 10_000, "{}", data.len());
    assert_eq!(&wove_proto::Payload::from_bytes(data).unwrap(), p.payload(), "the worker reads it back");
    // The Job still names the payload as given.
    assert_eq!(m.payload_sha256(), Some(p.sha256()));

    // A payload that fits a Secret as it is stays as it is (Wove's own worker could read it).
    let m = kubernetes::render(&payload(40_000), &options()).unwrap();
    let data = &m.payload_secret.as_ref().unwrap().data.as_ref().unwrap()["payload"].0;
    assert!(data.starts_with(b"{"));

    // Placed in the environment by request, a payload too large there is compressed to fit.
    let env_only = options().payload_placement(PayloadPlacement::Env);
    let m = kubernetes::render(&payload(200_000), &env_only).unwrap();
    let value = env(&m.job, "WOVE_BACKEND_PAYLOAD").unwrap().value.clone().unwrap();
    assert_eq!(&wove_proto::Payload::from_base64(&value).unwrap(), payload(200_000).payload());

    // Always: even a small one.
    let mut always = options();
    always.compression = Compression::Always;
    let m = kubernetes::render(&payload(10), &always).unwrap();
    let value = env(&m.job, "WOVE_BACKEND_PAYLOAD").unwrap().value.clone().unwrap();
    assert_ne!(value, payload(10).base64());
    assert!(wove_proto::gzip::is_gzip(&base64::engine::general_purpose::STANDARD.decode(&value).unwrap()));
}

#[test]
fn a_many_task_payload_becomes_one_indexed_job_with_each_index_retried_alone() {
    let m = kubernetes::render(&common::many(7), &options()).unwrap();
    let spec = m.job.spec.as_ref().unwrap();
    assert_eq!(spec.completion_mode.as_deref(), Some("Indexed"));
    assert_eq!((spec.completions, spec.parallelism, spec.backoff_limit_per_index), (Some(7), Some(7), Some(0)));
    assert_eq!(spec.backoff_limit, None);
    assert_eq!(
        spec.pod_failure_policy.as_ref().unwrap().rules[1].action,
        "FailIndex",
        "a failed task fails its index only"
    );
    assert_eq!(m.job.metadata.annotations.as_ref().unwrap()["wove.dev/tasks"], "7");
    assert!(check::check(&m).is_empty());

    // The caller's retries and pods at once are kept; completions must match the tasks.
    let o = JobOptions { backoff_limit: 2, ..options() }.indexed(Indexed {
        completions: 0,
        parallelism: Some(3),
        backoff_limit_per_index: None,
        max_failed_indexes: None,
    });
    let spec = kubernetes::render(&common::many(7), &o).unwrap().job.spec.unwrap();
    assert_eq!((spec.completions, spec.parallelism, spec.backoff_limit_per_index), (Some(7), Some(3), Some(2)));
    let o = options().indexed(Indexed {
        completions: 6,
        parallelism: None,
        backoff_limit_per_index: None,
        max_failed_indexes: None,
    });
    let err = kubernetes::render(&common::many(7), &o).unwrap_err().to_string();
    assert!(err.contains("indexed.completions") && err.contains("7 tasks"), "{err}");
}

#[test]
fn thousands_of_tasks_fit_one_secret_compressed() {
    // 25,000 entries: about 1.2 MB of JSON, over a Secret as it is.
    let p = common::many(25_000);
    assert!(p.bytes().len() > 1_048_576, "{}", p.bytes().len());
    let m = kubernetes::render(&p, &options()).unwrap();
    let data = &m.payload_secret.as_ref().unwrap().data.as_ref().unwrap()["payload"].0;
    assert!(data.len() < 1_048_576 / 4, "{}", data.len());
    let back = wove_proto::Payload::from_bytes(data).unwrap();
    assert_eq!(back.task_count(), 25_000);
    assert_eq!(back.select(Some(24_999)).unwrap().task_id, "square-24999");

    // As many as a payload may hold (and an Indexed Job may run) fit too.
    let p = common::many(wove_proto::fan_out::MAX_TASKS);
    let m = kubernetes::render(&p, &options()).unwrap();
    let data = &m.payload_secret.as_ref().unwrap().data.as_ref().unwrap()["payload"].0;
    println!("{} tasks: {} bytes of JSON, {} compressed", wove_proto::fan_out::MAX_TASKS, p.bytes().len(), data.len());
    assert!(data.len() < 1_048_576);
    assert_eq!(m.job.spec.as_ref().unwrap().completions, Some(100_000));
}

#[test]
fn a_signing_secret_is_written_name_or_name_colon_key() {
    let parsed: SigningSecret = "wove-signing".parse().unwrap();
    assert_eq!(parsed, SigningSecret::new("wove-signing"));
    let parsed: SigningSecret = "wove-signing:current".parse().unwrap();
    assert_eq!((parsed.name.as_str(), parsed.key.as_str(), parsed.as_file), ("wove-signing", "current", false));
    for bad in ["", ":key", "name:"] {
        assert!(bad.parse::<SigningSecret>().unwrap_err().contains("NAME or NAME:KEY"), "{bad:?}");
    }
}

#[test]
fn the_signing_secret_comes_from_a_kubernetes_secret() {
    let m = kubernetes::render(&payload(0), &options().signing_secret(SigningSecret::new("wove-signing"))).unwrap();
    let var = env(&m.job, "WOVE_WORKER_SIGNING_SECRET").unwrap();
    assert!(var.value.is_none(), "never inline");
    let r = var.value_from.as_ref().unwrap().secret_key_ref.as_ref().unwrap();
    assert_eq!((r.name.as_str(), r.key.as_str()), ("wove-signing", "secret"));

    let as_file = SigningSecret { name: "wove-signing".into(), key: "current".into(), as_file: true };
    let m = kubernetes::render(&payload(0), &options().signing_secret(as_file)).unwrap();
    assert_eq!(
        env(&m.job, "WOVE_WORKER_SIGNING_SECRET_FILE").unwrap().value.as_deref(),
        Some("/var/run/secrets/wove/signing/current")
    );
    assert!(pod(&m.job).volumes.iter().flatten().any(|v| v.name == "wove-signing"));
}

#[test]
fn the_grace_period_follows_the_shutdown_budget() {
    let mut o = options();
    o.shutdown_budget_seconds = 50;
    let m = kubernetes::render(&payload(0), &o).unwrap();
    assert_eq!(pod(&m.job).termination_grace_period_seconds, Some(55));
    assert_eq!(env(&m.job, "WOVE_WORKER_SHUTDOWN_BUDGET").unwrap().value.as_deref(), Some("50"));

    o.termination_grace_period_seconds = Some(40);
    let err = kubernetes::render(&payload(0), &o).unwrap_err();
    assert!(err.to_string().contains("termination_grace_period_seconds") && err.to_string().contains("55"), "{err}");
}

#[test]
fn indexed_jobs_retry_each_index_alone() {
    let o = options().indexed(Indexed {
        completions: 5,
        parallelism: Some(2),
        backoff_limit_per_index: Some(1),
        max_failed_indexes: Some(2),
    });
    let m = kubernetes::render(&payload(0), &o).unwrap();
    let spec = m.job.spec.as_ref().unwrap();
    assert_eq!(spec.completion_mode.as_deref(), Some("Indexed"));
    assert_eq!((spec.completions, spec.parallelism, spec.backoff_limit_per_index), (Some(5), Some(2), Some(1)));
    assert_eq!(spec.backoff_limit, None, "per-index retries replace the Job-wide limit");
    assert_eq!(spec.pod_failure_policy.as_ref().unwrap().rules[1].action, "FailIndex");

    let bad = options().indexed(Indexed {
        completions: 2,
        parallelism: None,
        backoff_limit_per_index: None,
        max_failed_indexes: Some(1),
    });
    assert!(kubernetes::render(&payload(0), &bad).unwrap_err().to_string().contains("max_failed_indexes"));
}

#[test]
fn a_hook_may_change_the_job_but_not_break_it() {
    let m = kubernetes::render_with(&payload(0), &options(), |job| {
        job.metadata.annotations.as_mut().unwrap().insert("team.example/owner".into(), "data".into());
        Ok::<(), String>(())
    })
    .unwrap();
    assert_eq!(m.job.metadata.annotations.as_ref().unwrap()["team.example/owner"], "data");

    let err = kubernetes::render_with(&payload(0), &options(), |job| {
        job.metadata.name = Some("x".repeat(64));
        job.metadata.labels.as_mut().unwrap().insert("wove-run-id".into(), RUN.into());
        let spec = job.spec.as_mut().unwrap();
        let pod = spec.template.spec.as_mut().unwrap();
        pod.restart_policy = Some("OnFailure".into());
        pod.termination_grace_period_seconds = Some(10);
        let c = &mut pod.containers[0];
        c.env.as_mut().unwrap().push(EnvVar {
            name: "HUGE".into(),
            value: Some("y".repeat(140_000)),
            ..Default::default()
        });
        spec.pod_failure_policy.as_mut().unwrap().rules[1].on_exit_codes.as_mut().unwrap().values = vec![0, 76, 3];
        Ok::<(), String>(())
    })
    .unwrap_err();
    let RenderError::Invalid(violations) = &err else { panic!("{err}") };
    let text = err.to_string();
    for expected in [
        "metadata.name",
        "metadata.labels.wove-run-id",
        "restartPolicy",
        "terminationGracePeriodSeconds",
        "env.HUGE",
        "sorted and unique",
        "0 is not allowed",
    ] {
        assert!(text.contains(expected), "{expected} missing from: {text}");
    }
    assert!(violations.len() >= 7, "{violations:?}");
}

#[test]
fn a_hook_that_fails_ends_the_render_with_its_error_as_the_cause() {
    let err = kubernetes::render_with(&payload(0), &options(), |_| Err("the team's quota is spent")).unwrap_err();
    assert!(matches!(err, RenderError::Hook(_)), "{err}");
    assert_eq!(wove_submit::error_chain(&err), "the Job's hook failed: the team's quota is spent");
}

#[test]
fn the_checks_find_a_missing_payload_and_a_dangling_mount() {
    let mut m = kubernetes::render(&payload(0), &options()).unwrap();
    let c = &mut m.job.spec.as_mut().unwrap().template.spec.as_mut().unwrap().containers[0];
    c.env.as_mut().unwrap().retain(|v| v.name != "WOVE_BACKEND_PAYLOAD");
    c.volume_mounts = Some(vec![k8s_openapi::api::core::v1::VolumeMount {
        name: "nowhere".into(),
        mount_path: "/x".into(),
        ..Default::default()
    }]);
    let text = check::check(&m).iter().map(ToString::to_string).collect::<Vec<_>>().join("\n");
    assert!(text.contains("exactly one payload source"), "{text}");
    assert!(text.contains("no volume \"nowhere\""), "{text}");
}

#[test]
fn options_that_cannot_work_name_themselves() {
    let cases: Vec<(JobOptions, &str)> = vec![
        (JobOptions::default(), "image"),
        (options().namespace("Team_A"), "namespace"),
        (JobOptions { name_prefix: "Wove".into(), ..options() }, "name_prefix"),
        (JobOptions { command: vec![], ..options() }, "command"),
        (
            JobOptions {
                env: vec![EnvVar {
                    name: "WOVE_BACKEND_PAYLOAD".into(),
                    value: Some("x".into()),
                    ..Default::default()
                }],
                ..options()
            },
            "env",
        ),
        (JobOptions { labels: [("wove.dev/run".into(), "x".into())].into(), ..options() }, "labels"),
        (JobOptions { labels: [("team".into(), "a:b".into())].into(), ..options() }, "labels"),
        (JobOptions { backoff_limit: -1, ..options() }, "backoff_limit"),
        (JobOptions { inline_payload_max_bytes: 200_000, ..options() }, "inline_payload_max_bytes"),
    ];
    for (o, option) in cases {
        let err = kubernetes::render(&payload(0), &o).unwrap_err();
        assert!(matches!(&err, RenderError::Option { option: o, .. } if *o == option), "{option}: {err}");
    }
}

#[test]
fn an_image_pull_policy_kubernetes_does_not_know_is_refused_as_it_is_read() {
    let read = |policy: &str| {
        serde_json::from_value::<JobOptions>(serde_json::json!({"image": "img:1", "image_pull_policy": policy}))
    };
    let err = read("Sometimes").unwrap_err();
    assert!(err.to_string().contains("Sometimes"), "{err}");
    let o = read("IfNotPresent").unwrap();
    let m = kubernetes::render(&payload(0), &o).unwrap();
    assert_eq!(container(&m.job).image_pull_policy.as_deref(), Some("IfNotPresent"));
    assert_eq!("Never".parse::<kubernetes::ImagePullPolicy>(), Ok(kubernetes::ImagePullPolicy::Never));
    assert!("never".parse::<kubernetes::ImagePullPolicy>().unwrap_err().contains("Always, IfNotPresent or Never"));
}

#[test]
fn read_only_root_gets_a_scratch_directory() {
    let mut o = options();
    o.security.read_only_root_filesystem = true;
    let m = kubernetes::render(&payload(0), &o).unwrap();
    let c = container(&m.job);
    assert_eq!(c.security_context.as_ref().unwrap().read_only_root_filesystem, Some(true));
    assert!(c.volume_mounts.iter().flatten().any(|v| v.mount_path == "/tmp"));
}

#[test]
fn options_read_from_json_with_kubernetes_fields_in_their_own_case() {
    let o: JobOptions = serde_json::from_value(serde_json::json!({
        "image": "img:1",
        "namespace": "batch",
        "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"nvidia.com/gpu": "1"}},
        "tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}],
        "signing_secret": {"name": "sig"},
        "indexed": {"completions": 3},
    }))
    .unwrap();
    assert_eq!(o.signing_secret.as_ref().unwrap().key, "secret");
    assert_eq!(o.backoff_limit, 0, "unnamed options keep their defaults");
    let m = kubernetes::render(&payload(0), &o).unwrap();
    let r = container(&m.job).resources.as_ref().unwrap();
    assert_eq!(r.requests.as_ref().unwrap()["memory"].0, "1Gi");
    assert_eq!(m.namespace(), "batch");

    let unknown = serde_json::from_value::<JobOptions>(serde_json::json!({"image": "i", "imagee": "typo"}));
    assert!(unknown.unwrap_err().to_string().contains("imagee"));
}

#[test]
fn a_payload_no_secret_holds_goes_to_the_store_by_reference() {
    let p = noisy(3_000_000);
    let mut o = options();
    o.payload_store = Some(kubernetes::options::PayloadStore::new("s3://wove-payloads/k8s"));
    let manifest = kubernetes::render(&p, &o).unwrap();
    let object = manifest.payload_object.clone().expect("an object to upload");
    assert_eq!(object.bytes, p.bytes());
    assert!(manifest.payload_secret.is_none(), "an s3:// reference needs no Secret");
    let value = |name: &str| env(&manifest.job, name).and_then(|v| v.value.clone());
    assert_eq!(
        value("WOVE_BACKEND_PAYLOAD_URL"),
        Some(format!("s3://wove-payloads/k8s/{}/{}", manifest.name(), object.sha256))
    );
    assert_eq!(value("WOVE_BACKEND_PAYLOAD_SHA256").as_deref(), Some(object.sha256.as_str()));
    assert_eq!(value("WOVE_BACKEND_PAYLOAD_SIZE"), Some(object.bytes.len().to_string()));
    assert!(value("WOVE_BACKEND_PAYLOAD").is_none() && value("WOVE_BACKEND_PAYLOAD_FILE").is_none());
    let annotations = manifest.job.metadata.annotations.as_ref().unwrap();
    assert_eq!(annotations["wove.dev/payload-object"], object.url());
    assert!(check::check(&manifest).is_empty());
    // Small payloads stay where they were, unless the store takes all.
    assert!(kubernetes::render(&payload(10), &o).unwrap().payload_object.is_none());
    o.payload_store.as_mut().unwrap().always = true;
    assert!(kubernetes::render(&payload(10), &o).unwrap().payload_object.is_some());
}

#[test]
fn a_presigned_url_is_kept_in_the_jobs_secret_not_its_spec() {
    let mut o = options();
    o.payload_store = Some(kubernetes::options::PayloadStore {
        always: true,
        presign_seconds: Some(900),
        ..kubernetes::options::PayloadStore::new("s3://wove-payloads")
    });
    let mut manifest = kubernetes::render(&payload(10), &o).unwrap();
    let url = env(&manifest.job, "WOVE_BACKEND_PAYLOAD_URL").unwrap();
    assert!(url.value.is_none());
    let key_ref = url.value_from.as_ref().unwrap().secret_key_ref.clone().unwrap();
    let secret = manifest.payload_secret.as_ref().unwrap();
    assert_eq!(Some(&key_ref.name), secret.metadata.name.as_ref());
    manifest.set_payload_url("https://wove-payloads.s3.amazonaws.com/x?X-Amz-Signature=f00d");
    let data = manifest.payload_secret.as_ref().unwrap().data.as_ref().unwrap();
    assert_eq!(data[&key_ref.key].0, b"https://wove-payloads.s3.amazonaws.com/x?X-Amz-Signature=f00d");
    assert!(!serde_json::to_string(&manifest.job).unwrap().contains("X-Amz-Signature"));
}
