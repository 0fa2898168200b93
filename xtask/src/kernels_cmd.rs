//! `cargo xtask kernels update|list`.

use vm::kernel::{all_series, DebianKernel, KernelSpec, KernelStore, LockFile};

use crate::{exit, UsageError};

pub fn update(specs: &[String]) -> anyhow::Result<u8> {
    let path = crate::lock_path();
    let mut lock = LockFile::load(&path)?;
    let series: Vec<DebianKernel> = if specs.is_empty() {
        // Every series that is not opt-in, and every kernel already pinned.
        let mut v: Vec<DebianKernel> = all_series()
            .iter()
            .flat_map(|series| {
                series.default_flavours.iter().map(move |f| DebianKernel {
                    series,
                    flavour: vm::declared::flavour(f).expect("matrix.toml is checked"),
                })
            })
            .collect();
        for key in lock.kernels.keys() {
            if let Ok(KernelSpec::Debian(k)) = KernelSpec::parse(key) {
                if !v.contains(&k) {
                    v.push(k);
                }
            }
        }
        v
    } else {
        specs
            .iter()
            .map(|s| match KernelSpec::parse(s) {
                Ok(KernelSpec::Debian(x)) => Ok(x),
                Ok(_) => Err(UsageError(format!(
                    "{s} is a local kernel: nothing to lock"
                ))),
                Err(e) => Err(UsageError(e.to_string())),
            })
            .collect::<Result<_, _>>()?
    };
    let mut store = KernelStore::new(&crate::cache_dir());
    for s in series {
        let key = s.label();
        eprintln!(
            "resolving {key} in {}",
            s.series
                .suites
                .iter()
                .map(|x| x.name)
                .collect::<Vec<_>>()
                .join("+")
        );
        let l = store.resolve(&s)?;
        let old = lock.kernels.get(&key).map(|o| o.version.clone());
        match old {
            Some(v) if v == l.version => eprintln!("  {} {} (unchanged)", l.package, l.version),
            Some(v) => eprintln!("  {} {} (was {v})", l.package, l.version),
            None => eprintln!("  {} {} (new)", l.package, l.version),
        }
        lock.kernels.insert(key, l);
    }
    lock.save(&path)?;
    println!("wrote {}", path.display());
    Ok(exit::OK)
}

pub fn list() -> anyhow::Result<u8> {
    let lock = LockFile::load(&crate::lock_path())?;
    let debs = crate::cache_dir().join("debs");
    let mut keys: Vec<String> = all_series()
        .iter()
        .flat_map(|series| {
            series.default_flavours.iter().map(move |f| {
                DebianKernel {
                    series,
                    flavour: vm::declared::flavour(f).expect("matrix.toml is checked"),
                }
                .label()
            })
        })
        .collect();
    keys.extend(
        lock.kernels
            .keys()
            .filter(|k| !keys.contains(k))
            .cloned()
            .collect::<Vec<_>>(),
    );
    for key in &keys {
        match lock.kernels.get(key) {
            None => println!("{key:<6} not locked (resolved on first use)"),
            Some(k) => {
                let cached = k
                    .packages
                    .iter()
                    .all(|p| debs.join(format!("{}_{}.deb", p.name, p.version)).exists());
                println!(
                    "{:<6} {} {} [{}] {}",
                    key,
                    k.package,
                    k.version,
                    k.suites.join("+"),
                    if cached { "cached" } else { "not cached" }
                );
            }
        }
    }
    Ok(exit::OK)
}
