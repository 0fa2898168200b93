//! `cargo xtask kernels update|list`.

use vm::kernel::{KernelSpec, KernelStore, LockFile, SERIES};

use crate::{exit, UsageError};

pub fn update(specs: &[String]) -> anyhow::Result<u8> {
    let series: Vec<_> = if specs.is_empty() {
        SERIES.iter().collect()
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
    let path = crate::lock_path();
    let mut lock = LockFile::load(&path)?;
    let mut store = KernelStore::new(&crate::cache_dir());
    for s in series {
        eprintln!(
            "resolving {} in {}",
            s.spec,
            s.suites
                .iter()
                .map(|x| x.name)
                .collect::<Vec<_>>()
                .join("+")
        );
        let l = store.resolve(s)?;
        let old = lock.kernels.get(s.spec).map(|o| o.version.clone());
        match old {
            Some(v) if v == l.version => eprintln!("  {} {} (unchanged)", l.package, l.version),
            Some(v) => eprintln!("  {} {} (was {v})", l.package, l.version),
            None => eprintln!("  {} {} (new)", l.package, l.version),
        }
        lock.kernels.insert(s.spec.to_string(), l);
    }
    lock.save(&path)?;
    println!("wrote {}", path.display());
    Ok(exit::OK)
}

pub fn list() -> anyhow::Result<u8> {
    let lock = LockFile::load(&crate::lock_path())?;
    let debs = crate::cache_dir().join("debs");
    for s in SERIES {
        match lock.kernels.get(s.spec) {
            None => println!("{:<6} not locked (resolved on first use)", s.spec),
            Some(k) => {
                let cached = k
                    .packages
                    .iter()
                    .all(|p| debs.join(format!("{}_{}.deb", p.name, p.version)).exists());
                println!(
                    "{:<6} {} {} [{}] {}",
                    s.spec,
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
