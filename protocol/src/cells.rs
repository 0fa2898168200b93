//! How one run's records split into the report's cells (a filesystem target at one logical block
//! size): kernel-scope results are copied into every cell, a filesystem's results go into their
//! own. Native runs (`harness run --out`) and guests of the matrix split the same way, here.

use crate::{CheckResult, Counts, Record, Scope};

/// The results of the cell of filesystem `fs` at `logical_block_size` among `records`, in
/// stream order, and their counts.
pub fn cell_results(
    records: &[Record],
    fs: &str,
    logical_block_size: Option<u32>,
) -> (Vec<CheckResult>, Counts) {
    let results: Vec<CheckResult> = records
        .iter()
        .filter_map(|r| match r {
            Record::Result(c) => Some(c),
            _ => None,
        })
        .filter(|r| {
            r.scope == Scope::Kernel
                || (r.fs.as_deref() == Some(fs) && r.logical_block_size == logical_block_size)
        })
        .cloned()
        .collect();
    let mut counts = Counts::default();
    results.iter().for_each(|r| counts.add(r.outcome));
    (results, counts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Outcome;

    /// A result record as a guest streams it (parsed, so that fields added later with a default
    /// need no change here).
    fn result(
        check: &str,
        scope: &str,
        fs: Option<&str>,
        lbs: Option<u32>,
        outcome: &str,
    ) -> Record {
        serde_json::from_value(serde_json::json!({
            "type": "result", "check": check, "variant": null, "scope": scope, "fs": fs,
            "logical_block_size": lbs, "outcome": outcome, "observed": "", "expected": "",
            "evidence": "", "detail": "", "duration_ms": 0,
        }))
        .unwrap()
    }

    #[test]
    fn kernel_results_go_into_every_cell_and_fs_results_into_their_own() {
        let records = [
            Record::Error {
                message: "not a result".into(),
            },
            result("cow.fork_basic", "kernel", None, None, "xfail"),
            result("dio.open", "fs", Some("ext4"), Some(512), "pass"),
            result("dio.open", "fs", Some("ext4"), Some(4096), "fail"),
            result("dio.open", "fs", Some("tmpfs"), None, "skip"),
        ];
        let ids = |(rs, _): &(Vec<CheckResult>, Counts)| -> Vec<String> {
            rs.iter()
                .map(|r| format!("{}@{:?}", r.check, r.logical_block_size))
                .collect()
        };
        let ext4_512 = cell_results(&records, "ext4", Some(512));
        assert_eq!(
            ids(&ext4_512),
            ["cow.fork_basic@None", "dio.open@Some(512)"]
        );
        assert_eq!(ext4_512.1.get(Outcome::Xfail), 1);
        assert_eq!(ext4_512.1.get(Outcome::Fail), 0);
        let tmpfs = cell_results(&records, "tmpfs", None);
        assert_eq!(ids(&tmpfs), ["cow.fork_basic@None", "dio.open@None"]);
        assert_eq!(
            ids(&cell_results(&records, "xfs", Some(512))),
            ["cow.fork_basic@None"]
        );
    }
}
