//! The submitter's names and label values for any ids: always valid where
//! they go (Kubernetes names and labels, AWS Batch job names and tags).
#![no_main]

use libfuzzer_sys::fuzz_target;
use wove_submit::batch::render::{is_job_name, tag_value, MAX_JOB_NAME};
use wove_submit::naming::{is_dns1123_label, is_label_value, label_value, object_name, object_name_within};

fuzz_target!(|input: (String, String)| {
    let (run_id, task_id) = input;
    let name = object_name("wove", &run_id, &task_id).expect("a valid prefix");
    assert!(is_dns1123_label(&name), "{name:?}");
    let job = object_name_within("wove", &run_id, &task_id, MAX_JOB_NAME).expect("a valid prefix");
    assert!(is_job_name(&job), "{job:?}");
    assert!(is_label_value(&label_value(&run_id)));
    assert!(tag_value(&run_id).chars().count() <= 256);
});
