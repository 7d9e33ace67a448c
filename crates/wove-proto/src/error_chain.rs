//! One way to print an error: its message and each cause, once.

/// An error and its causes on one line: `cannot read x: permission denied`.
///
/// Each cause is said once. Some libraries repeat their source in their own
/// message (`HyperError: connection refused`, then `connection refused` as
/// the source); a cause whose text the line already holds is left out, so a
/// message never repeats itself however its error was built.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let said = cause.to_string();
        if !said.is_empty() && !text.contains(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct E(&'static str, Option<Box<E>>);
    impl std::fmt::Display for E {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }
    impl std::error::Error for E {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|e| e as _)
        }
    }

    #[test]
    fn each_cause_is_said_once() {
        let plain = E("cannot read x", Some(Box::new(E("permission denied", None))));
        assert_eq!(error_chain(&plain), "cannot read x: permission denied");
        let repeating = E("HyperError: refused", Some(Box::new(E("refused", Some(Box::new(E("os error 111", None)))))));
        assert_eq!(error_chain(&repeating), "HyperError: refused: os error 111");
        assert_eq!(error_chain(&E("alone", None)), "alone");
    }
}
