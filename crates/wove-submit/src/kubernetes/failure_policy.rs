//! The `podFailurePolicy` that reads the worker's exit codes.
//!
//! Written from `wove_proto::exit`, never by hand, so a new code in the
//! contract reaches every Job the submitter renders.

use k8s_openapi::api::batch::v1::{
    PodFailurePolicy, PodFailurePolicyOnExitCodesRequirement, PodFailurePolicyOnPodConditionsPattern,
    PodFailurePolicyRule,
};
use wove_proto::Exit;

use super::manifest::CONTAINER;

/// The rules, first match wins:
/// 1. `Ignore` a pod that failed because it was disrupted (evicted, preempted,
///    its node drained): that is not the task's fault and must not use up a retry;
/// 2. `FailJob` (or `FailIndex`, when each index has its own retries) on the
///    permanent codes: the task already reported its failure, or the payload
///    or configuration is wrong, and running it again cannot help;
/// 3. `Count` the retryable codes against the backoff limit.
///
/// Codes are sorted and unique, and never 0, as the API requires.
pub fn pod_failure_policy(per_index: bool) -> PodFailurePolicy {
    let on_codes = |codes: Vec<u8>| PodFailurePolicyOnExitCodesRequirement {
        container_name: Some(CONTAINER.to_string()),
        operator: "In".to_string(),
        values: codes.into_iter().map(i32::from).collect(),
    };
    PodFailurePolicy {
        rules: vec![
            PodFailurePolicyRule {
                action: "Ignore".to_string(),
                on_pod_conditions: Some(vec![PodFailurePolicyOnPodConditionsPattern {
                    type_: "DisruptionTarget".to_string(),
                    status: "True".to_string(),
                }]),
                ..Default::default()
            },
            PodFailurePolicyRule {
                action: if per_index { "FailIndex" } else { "FailJob" }.to_string(),
                on_exit_codes: Some(on_codes(Exit::permanent_codes())),
                ..Default::default()
            },
            PodFailurePolicyRule {
                action: "Count".to_string(),
                on_exit_codes: Some(on_codes(Exit::retryable_codes())),
                ..Default::default()
            },
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_follow_the_contract() {
        let policy = pod_failure_policy(false);
        let codes = |i: usize| policy.rules[i].on_exit_codes.as_ref().unwrap().values.clone();
        assert_eq!(policy.rules[0].action, "Ignore");
        assert_eq!(policy.rules[1].action, "FailJob");
        assert_eq!(codes(1), vec![3, 65, 66, 76, 78]);
        assert_eq!(policy.rules[2].action, "Count");
        assert_eq!(codes(2), vec![70, 75, 130, 137, 143]);
        assert_eq!(pod_failure_policy(true).rules[1].action, "FailIndex");
    }
}
