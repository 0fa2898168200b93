//! Shard reports joined into the report one unsharded run of the same matrix would have written.
//!
//! A shard holds whole guests (every cell of a kernel), so joining is putting the cells back in
//! the selection's kernel order. What can go wrong is joining the wrong things: shards of other
//! selections, lock files or zcmatrix versions, a shard twice, or one missing; each is refused
//! with a message that says which.

use crate::model::{Report, RunInfo};

/// Joins the reports of every shard of one run. The result's `run` has no shard.
pub fn merge(shards: &[(String, Report)]) -> Result<Report, String> {
    let Some((first_name, first)) = shards.first() else {
        return Err("no shard report to merge".into());
    };
    let info = |name: &str, r: &Report| -> Result<RunInfo, String> {
        let info = r.run.clone().ok_or_else(|| {
            format!("{name}: no `run` in report.json: not written by a sharded test-matrix")
        })?;
        if info.shard.is_none() {
            return Err(format!(
                "{name}: a whole run, not a shard (it was run without --shard)"
            ));
        }
        Ok(info)
    };
    let base = info(first_name, first)?;
    let count = base.shard.as_ref().map_or(0, |s| s.count);
    let mut by_index: Vec<Option<(&str, &Report, Vec<String>)>> = vec![None; count as usize];
    for (name, r) in shards {
        let i = info(name, r)?;
        if i.zcmatrix_version != base.zcmatrix_version {
            return Err(format!(
                "{name} was written by zcmatrix {}, {first_name} by {}: rerun the shards with \
                 one version",
                i.zcmatrix_version, base.zcmatrix_version
            ));
        }
        if i.lock_sha256 != base.lock_sha256 {
            return Err(format!(
                "{name} started from another kernels.lock than {first_name} (sha256 {} vs {}): \
                 its kernels may be other builds",
                i.lock_sha256.as_deref().unwrap_or("none"),
                base.lock_sha256.as_deref().unwrap_or("none")
            ));
        }
        if i.selection != base.selection {
            return Err(format!(
                "{name} is a shard of another matrix than {first_name}: {:?} vs {:?}",
                i.selection, base.selection
            ));
        }
        let s = i.shard.expect("checked by info()");
        if s.count != count {
            return Err(format!(
                "{name} is shard {}/{}, {first_name} one of {count}: the same run has one shard \
                 count",
                s.index, s.count
            ));
        }
        let slot = by_index
            .get_mut(s.index.wrapping_sub(1) as usize)
            .ok_or_else(|| format!("{name}: shard {}/{} is out of range", s.index, s.count))?;
        if let Some((other, ..)) = slot {
            return Err(format!(
                "shard {}/{count} given twice: {other} and {name}",
                s.index
            ));
        }
        *slot = Some((name, r, s.kernels));
    }
    let missing: Vec<String> = by_index
        .iter()
        .enumerate()
        .filter(|(_, s)| s.is_none())
        .map(|(i, _)| format!("{}/{count}", i + 1))
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "missing shard {} (of {} given): the merged report would lack its cells",
            missing.join(", "),
            shards.len()
        ));
    }
    let present: Vec<(&str, &Report, Vec<String>)> = by_index.into_iter().flatten().collect();
    // Every kernel of the selection must have been run by exactly one shard: shards that split
    // the kernels differently (another guest-times.json on another machine) would otherwise
    // give a kernel twice or not at all.
    let mut cells = Vec::new();
    for k in &base.selection.kernels {
        let owners: Vec<&(&str, &Report, Vec<String>)> =
            present.iter().filter(|(_, _, ks)| ks.contains(k)).collect();
        match owners.as_slice() {
            [(_, r, _)] => cells.extend(r.cells.iter().filter(|c| &c.kernel_spec == k).cloned()),
            [] => {
                return Err(format!(
                    "no shard ran kernel {k}: the shards split the kernels differently (did they \
                     see different guest-times.json files?)"
                ))
            }
            many => {
                return Err(format!(
                    "kernel {k} was run by more than one shard ({})",
                    many.iter().map(|(n, ..)| *n).collect::<Vec<_>>().join(", ")
                ))
            }
        }
    }
    let mut merged = Report::new(
        present.iter().find_map(|(_, r, _)| r.accel_note.clone()),
        cells,
    );
    merged.run = Some(RunInfo {
        shard: None,
        ..base
    });
    Ok(merged)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{fixture, Selection, Shard};

    fn selection() -> Selection {
        Selection {
            kernels: vec!["5.10".into(), "6.1".into()],
            filesystems: vec!["ext4".into()],
            geometries: vec![4096],
            checks: vec![],
            memory_mb: 512,
            kernel_args: vec![],
            profile: Default::default(),
        }
    }

    fn info(shard: Option<(u32, u32, &[&str])>) -> RunInfo {
        RunInfo {
            selection: selection(),
            shard: shard.map(|(index, count, ks)| Shard {
                index,
                count,
                kernels: ks.iter().map(|k| k.to_string()).collect(),
            }),
            lock_sha256: Some("abc".into()),
            zcmatrix_version: "0.1.0".into(),
            kernel_files: vec![],
        }
    }

    /// The whole run of the fixture (5.10 and 6.1), and its split into shards as `kernels` say.
    fn shards(split: &[&[&str]]) -> (Report, Vec<(String, Report)>) {
        let mut whole = fixture::two_kernels();
        whole.run = Some(info(None));
        let n = split.len() as u32;
        let parts = split
            .iter()
            .enumerate()
            .map(|(i, ks)| {
                let mut r = Report::new(
                    whole.accel_note.clone(),
                    whole
                        .cells
                        .iter()
                        .filter(|c| ks.contains(&c.kernel_spec.as_str()))
                        .cloned()
                        .collect(),
                );
                r.run = Some(info(Some((i as u32 + 1, n, ks))));
                (format!("shard{}", i + 1), r)
            })
            .collect();
        (whole, parts)
    }

    #[test]
    fn shards_merge_into_the_whole_run_in_any_order_with_an_empty_one() {
        let (whole, mut parts) = shards(&[&["6.1"], &[], &["5.10"]]);
        assert!(parts[1].1.cells.is_empty());
        assert_eq!(merge(&parts).unwrap(), whole);
        parts.reverse();
        assert_eq!(merge(&parts).unwrap(), whole);
    }

    #[test]
    fn a_shard_says_so_in_every_page_and_the_merged_report_does_not() {
        let (_, parts) = shards(&[&["6.1"], &[]]);
        let md = parts[0].1.markdown();
        assert!(
            md.contains("Shard 1/2 of a matrix of kernels 5.10, 6.1 (kernels 6.1)"),
            "{md}"
        );
        assert!(parts[0].1.html().contains("Shard 1/2 of a matrix"));
        assert!(parts[1]
            .1
            .markdown()
            .contains("no kernel: nothing was booted"));
        let (_, parts) = shards(&[&["6.1"], &["5.10"]]);
        assert!(!merge(&parts).unwrap().markdown().contains("Shard "));
    }

    #[test]
    fn a_merged_report_survives_json() {
        let (whole, parts) = shards(&[&["5.10", "6.1"]]);
        let m = merge(&parts).unwrap();
        assert_eq!(Report::from_json(&m.to_json()).unwrap(), whole);
    }

    #[test]
    fn missing_and_duplicated_shards_are_named() {
        let (_, parts) = shards(&[&["6.1"], &[], &["5.10"]]);
        let e = merge(&[parts[0].clone(), parts[2].clone()]).unwrap_err();
        assert!(e.contains("missing shard 2/3"), "{e}");
        let e = merge(&[parts[0].clone(), parts[0].clone()]).unwrap_err();
        assert!(e.contains("shard 1/3 given twice"), "{e}");
        assert!(merge(&[]).unwrap_err().contains("no shard"));
    }

    #[test]
    fn shards_of_other_runs_are_refused() {
        let (_, parts) = shards(&[&["6.1"], &["5.10"]]);
        let with = |f: &dyn Fn(&mut RunInfo)| {
            let mut p = parts.clone();
            f(p[1].1.run.as_mut().unwrap());
            merge(&p).unwrap_err()
        };
        let e = with(&|i| i.zcmatrix_version = "0.2.0".into());
        assert!(e.contains("zcmatrix 0.2.0"), "{e}");
        let e = with(&|i| i.lock_sha256 = Some("def".into()));
        assert!(e.contains("another kernels.lock"), "{e}");
        let e = with(&|i| i.selection.checks = vec!["dio.*".into()]);
        assert!(e.contains("another matrix"), "{e}");
        let e = with(&|i| i.shard.as_mut().unwrap().count = 3);
        assert!(e.contains("one shard count"), "{e}");
        let e = with(&|i| i.shard = None);
        assert!(e.contains("not a shard"), "{e}");
        let mut p = parts.clone();
        p[1].1.run = None;
        assert!(merge(&p).unwrap_err().contains("no `run`"));
    }

    #[test]
    fn shards_that_split_the_kernels_differently_are_refused() {
        let (_, parts) = shards(&[&["6.1"], &["6.1"]]);
        let e = merge(&parts).unwrap_err();
        assert!(e.contains("no shard ran kernel 5.10"), "{e}");
        let (_, parts) = shards(&[&["6.1", "5.10"], &["5.10"]]);
        let e = merge(&parts).unwrap_err();
        assert!(
            e.contains("kernel 5.10 was run by more than one shard"),
            "{e}"
        );
    }

    #[test]
    fn a_report_without_run_still_reads() {
        // A schema 2 report written before `run` existed.
        let (whole, _) = shards(&[&[]]);
        let mut old = whole.clone();
        old.run = None;
        let json = old.to_json();
        assert!(!json.contains("\"run\""));
        assert_eq!(Report::from_json(&json).unwrap().run, None);
    }
}
