//! Names and label values for any run id a weave may write (unicode, colons,
//! dots, 1000 characters): always valid where they go, always the same for
//! the same ids, never the same for different ones.

use proptest::prelude::*;
use wove_submit::batch::render::{is_job_name, tag_value, MAX_JOB_NAME};
use wove_submit::naming::{is_dns1123_label, is_label_value, label_value, object_name, object_name_within};

fn any_id() -> impl Strategy<Value = String> {
    prop_oneof!["\\PC{0,1000}", "[a-z]{1,12}:[0-9a-f]{32}", "[.:_ -]{1,20}", "\\PC{1,3}"]
}

proptest! {
    #[test]
    fn names_and_labels_are_valid_for_any_ids(run_id in any_id(), task_id in any_id()) {
        let name = object_name("wove", &run_id, &task_id).unwrap();
        prop_assert!(is_dns1123_label(&name), "{name:?}");
        prop_assert_eq!(&name, &object_name("wove", &run_id, &task_id).unwrap(), "deterministic");
        let job = object_name_within("wove", &run_id, &task_id, MAX_JOB_NAME).unwrap();
        prop_assert!(is_job_name(&job), "{job:?}");
        let label = label_value(&run_id);
        prop_assert!(is_label_value(&label), "{label:?}");
        let tag = tag_value(&run_id);
        prop_assert!(tag.chars().count() <= 256);
    }

    #[test]
    fn different_runs_never_share_a_name(a in any_id(), b in any_id(), task in any_id()) {
        prop_assume!(a != b);
        prop_assert_ne!(object_name("wove", &a, &task).unwrap(), object_name("wove", &b, &task).unwrap());
        prop_assert_ne!(label_value(&a), label_value(&b));
    }
}
