//! The options a command uses: the `--options` file (or the defaults), with what the flags give
//! laid over it by one rule.
//!
//! The flags are written in the file's own spelling ([`Given`]), so that a flag never means
//! something other than the key it stands for, and the result is read by the options' own
//! `Deserialize`. The rule, for every key: a value given replaces the file's; a list or map given
//! adds to the file's, except the lists named as whole values (a command is one thing, not items
//! to add); an object is overlaid key by key.

use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};

use super::args::refused;
use super::Failure;

/// What the flags gave, as a partial options object. Flags not given leave no key.
#[derive(Debug, Default)]
pub struct Given {
    keys: Map<String, Value>,
    unwritable: Option<String>,
}

impl Given {
    /// A flag's value, when it was given; `path` is the key, dotted for a nested one
    /// (`security.run_as_user`).
    pub fn value<T: Serialize>(&mut self, path: &str, value: Option<T>) -> &mut Self {
        let keys: Vec<&str> = path.split('.').collect();
        self.value_at(&keys, value)
    }

    /// The same, its key given as its parts: for a key that holds a dot (`nvidia.com/gpu`).
    pub fn value_at<T: Serialize>(&mut self, keys: &[&str], value: Option<T>) -> &mut Self {
        if let Some(value) = value {
            self.put(keys, &value);
        }
        self
    }

    /// A repeatable flag's items, when there are any.
    pub fn items<T: Serialize>(&mut self, path: &str, items: impl IntoIterator<Item = T>) -> &mut Self {
        let items: Vec<T> = items.into_iter().collect();
        if !items.is_empty() {
            self.put(&[path], &items);
        }
        self
    }

    /// `KEY=VALUE` flags, as the map they add to.
    pub fn entries(&mut self, path: &str, pairs: &[(String, String)]) -> &mut Self {
        if !pairs.is_empty() {
            let map: Map<String, Value> = pairs.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect();
            self.put(&[path], &map);
        }
        self
    }

    /// A switch: when it is on, the key gets `value`.
    pub fn switch<T: Serialize>(&mut self, path: &str, on: bool, value: T) -> &mut Self {
        self.value(path, on.then_some(value))
    }

    fn put<T: Serialize + ?Sized>(&mut self, keys: &[&str], value: &T) {
        let value = match serde_json::to_value(value) {
            Ok(value) => value,
            Err(e) => {
                self.unwritable.get_or_insert_with(|| format!("{}: {e}", keys.join(".")));
                return;
            }
        };
        let nested =
            keys.iter().rev().fold(value, |inner, key| Value::Object(Map::from_iter([(key.to_string(), inner)])));
        overlay(&mut self.keys, nested, &[]);
    }
}

/// The file's options (or the defaults) with `given` overlaid, read as `T`. `whole` names the
/// top-level lists a flag replaces instead of adding to.
pub fn options<T>(file: Option<&Path>, given: Given, whole: &[&str]) -> Result<T, Failure>
where
    T: Serialize + DeserializeOwned + Default,
{
    if let Some(why) = given.unwritable {
        return Err(refused(format!("a flag's value cannot be written as an option: {why}")));
    }
    // Read as `T` first: the file's mistakes are told with its line and column, and its
    // defaults are filled in before the flags are laid over them.
    let base: T = match file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| refused(format!("cannot read --options {}: {e}", path.display())))?;
            serde_json::from_str(&text).map_err(|e| refused(format!("--options {}: {e}", path.display())))?
        }
        None => T::default(),
    };
    if given.keys.is_empty() {
        return Ok(base);
    }
    let mut merged = match serde_json::to_value(&base) {
        Ok(Value::Object(map)) => map,
        Ok(_) | Err(_) => return Err(refused("the options cannot be written as a JSON object")),
    };
    overlay(&mut merged, Value::Object(given.keys), whole);
    serde_json::from_value(Value::Object(merged)).map_err(|e| refused(format!("the options with the flags: {e}")))
}

/// Lay `top` over `base` by the module's rule; `whole` applies at this level only.
fn overlay(base: &mut Map<String, Value>, top: Value, whole: &[&str]) {
    let Value::Object(top) = top else { return };
    for (key, given) in top {
        let Some(held) = base.get_mut(&key) else {
            base.insert(key, given);
            continue;
        };
        match (held, given) {
            (Value::Object(held), given @ Value::Object(_)) => overlay(held, given, &[]),
            (Value::Array(held), Value::Array(items)) if !whole.contains(&key.as_str()) => held.extend(items),
            (held, given) => *held = given,
        }
    }
}

/// What both backends' tests of their flags share.
#[cfg(test)]
pub mod testing {
    use std::path::Path;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use serde_json::Value;

    /// `read` given the path of an options file holding `file`; the file is removed after.
    pub fn with_options_file<T>(file: &Value, read: impl FnOnce(&Path) -> T) -> T {
        static FILES: AtomicUsize = AtomicUsize::new(0);
        let n = FILES.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("wove-submit-options-{}-{n}.json", std::process::id()));
        std::fs::write(&path, file.to_string()).unwrap();
        let read = read(&path);
        std::fs::remove_file(&path).unwrap();
        read
    }

    /// Each key of `want` has its value in `given`, and the only options `want` leaves out are
    /// `without_flag`, those no job flag sets (so that a new option without its flag fails).
    pub fn assert_each_flag_landed(given: &Value, want: Value, without_flag: &[&str]) {
        let Value::Object(want) = want else { panic!("want is not an object: {want}") };
        let left_out: Vec<&String> = given.as_object().unwrap().keys().filter(|k| !want.contains_key(*k)).collect();
        assert_eq!(left_out, without_flag);
        for (key, value) in want {
            assert_eq!(given[&key], value, "{key}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn overlaid(base: Value, top: Value, whole: &[&str]) -> Value {
        let Value::Object(mut base) = base else { unreachable!() };
        overlay(&mut base, top, whole);
        Value::Object(base)
    }

    #[test]
    fn values_replace_lists_and_maps_add_objects_merge() {
        let base = json!({"image": "a", "args": ["x"], "labels": {"k": "1"}, "security": {"run_as_user": 1, "run_as_group": 2}, "command": ["old"]});
        let top = json!({"image": "b", "args": ["y"], "labels": {"j": "2"}, "security": {"run_as_user": 7}, "command": ["new"], "suspend": true});
        let want = json!({"image": "b", "args": ["x", "y"], "labels": {"k": "1", "j": "2"}, "security": {"run_as_user": 7, "run_as_group": 2}, "command": ["new"], "suspend": true});
        assert_eq!(overlaid(base, top, &["command"]), want);
    }

    #[test]
    fn a_dotted_path_nests_and_flags_not_given_leave_nothing() {
        let mut given = Given::default();
        given
            .value("security.run_as_user", Some(5))
            .value("image", None::<String>)
            .items("args", Vec::<String>::new())
            .entries("labels", &[])
            .switch("suspend", false, true)
            .switch("security.read_only_root_filesystem", true, true)
            .value_at(&["limits", "nvidia.com/gpu"], Some("1"));
        assert_eq!(
            Value::Object(given.keys),
            json!({"security": {"run_as_user": 5, "read_only_root_filesystem": true}, "limits": {"nvidia.com/gpu": "1"}})
        );
    }
}
