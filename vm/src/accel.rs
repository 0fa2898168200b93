//! Which accelerator a run's guests get, shared by its worker threads.
//!
//! `auto` decides in three steps, each cheaper than the next is costly:
//! 1. a verdict kept in the cache (`crate::kvm_verdict`) that KVM cannot run a guest on this
//!    host kernel, QEMU and CPU means TCG at once, for nothing;
//! 2. else the probe (`crate::kvm::probe`, milliseconds) must run 64-bit paged code and a
//!    breakpoint in a KVM vCPU, or it is TCG;
//! 3. else the run itself is the final proof: the first guests start under KVM *on trial*, and
//!    one that shows no sign of life within [`KVM_SILENCE`] is stopped, KVM is declared unusable
//!    for the rest of the run (said once, kept in the report's note and in the cache) and that
//!    guest starts again under TCG, as does every guest after it; a guest still on trial under
//!    KVM at that moment stops and starts again under TCG too. Once a guest has spoken under
//!    KVM, KVM is proven for the run and nothing is watched any more.
//!
//! `kvm` and `tcg` are the user's word: no probe, no trial, no verdict.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use crate::kvm_verdict::{self, Key, Verdict};
use crate::qemu::Accel;

/// How long a guest on trial under KVM may show no sign of life (no record, no kernel line on its
/// console) before KVM is given up. A KVM guest's kernel prints its first console line within a
/// few tenths of a second and the harness its first record well under one second; five seconds
/// leave a loaded host (many guests, a busy CI runner) a wide margin while keeping the cost of a
/// KVM that runs nothing (a nested KVM such as PVM, where the guest hangs after the BIOS) at a
/// few seconds once per host, not a boot deadline per guest.
pub const KVM_SILENCE: Duration = Duration::from_secs(5);

/// Fault injection: set to `1`, `auto` skips the cached verdict and the probe and starts the
/// run's first KVM attempt as a guest that never speaks (QEMU started paused, `-S`, under TCG so
/// that it starts on any host, with or without KVM), which exercises the run-time fallback end to
/// end. The verdict it leads to is kept with `injected` in its key, never trusted by a real run.
pub const FAULT_KVM_SILENT: &str = "ZCMATRIX_FAULT_KVM_SILENT";

/// What the user asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccelChoice {
    Auto,
    Kvm,
    Tcg,
}

/// How one guest of the host's architecture is started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Start {
    /// The accelerator QEMU is given.
    pub accel: Accel,
    /// A KVM attempt on trial: report back with [`AccelPolicy::spoke`] or
    /// [`AccelPolicy::silent`]; stop it when [`AccelPolicy::gave_up`] says so.
    pub on_trial: bool,
    /// The injected fault: start QEMU paused, so the guest never speaks (`accel` is then TCG,
    /// though the attempt stands for a KVM one).
    pub paused: bool,
}

#[derive(Debug)]
struct State {
    accel: Accel,
    /// A guest has spoken under KVM in this run.
    proven: bool,
    /// The injected silent attempt has not been started yet.
    inject: bool,
    /// Said once for the run (the fallback to TCG), and the report's note.
    note: Option<String>,
}

/// The acceleration decision of a run: made before any guest, revised at most once (KVM to TCG)
/// while guests run, shared by the workers.
#[derive(Debug)]
pub struct AccelPolicy {
    choice: AccelChoice,
    state: Mutex<State>,
    /// Where verdicts are kept, and under which key; none: not kept (unit tests, `kvm`/`tcg`).
    store: Option<(PathBuf, Key)>,
}

impl AccelPolicy {
    /// The policy for `choice`, with this host's cached verdict, probe and fault injection
    /// ([`FAULT_KVM_SILENT`]); verdicts are kept in `cache` (see [`kvm_verdict::path`]).
    pub fn new(choice: AccelChoice, cache: &std::path::Path) -> Self {
        if choice != AccelChoice::Auto {
            return Self::decide(choice, None, false, || Ok(()));
        }
        let injected = std::env::var(FAULT_KVM_SILENT).is_ok_and(|v| v == "1");
        let qemu = crate::qemu::binary(crate::arch::Arch::host()).0;
        let store = (kvm_verdict::path(cache), Key::of_host(qemu, injected));
        Self::decide(choice, Some(store), injected, crate::kvm::probe)
    }

    /// The decision with the verdict store, the injection and the probe passed in, so every
    /// branch can be tested on any host. The probe runs only for `auto`, and not when the
    /// cache already says KVM is unusable or the fault is injected.
    pub fn decide(
        choice: AccelChoice,
        store: Option<(PathBuf, Key)>,
        injected: bool,
        probe: impl FnOnce() -> Result<(), crate::kvm::Unusable>,
    ) -> Self {
        let cached = store.as_ref().and_then(|(p, k)| kvm_verdict::load(p, k));
        let mut state = State {
            accel: Accel::Tcg,
            proven: false,
            inject: false,
            note: None,
        };
        let mut policy_store = None;
        match choice {
            AccelChoice::Kvm => state.accel = Accel::Kvm,
            AccelChoice::Tcg => {}
            AccelChoice::Auto if injected => {
                state.accel = Accel::Kvm;
                state.inject = true;
                policy_store = store;
            }
            AccelChoice::Auto => match cached {
                Some(v) if !v.usable => {
                    state.note = Some(format!(
                        "KVM cannot run a guest here (found by an earlier run: {}; kept in {} \
                         for this host kernel, QEMU and CPU); running under TCG (slower)",
                        v.reason,
                        store
                            .as_ref()
                            .map_or(String::new(), |(p, _)| p.display().to_string())
                    ));
                }
                _ => match probe() {
                    Ok(()) => {
                        state.accel = Accel::Kvm;
                        policy_store = store;
                    }
                    Err(why) => {
                        state.note = Some(format!(
                            "KVM cannot run a guest here ({why}); running under TCG (slower)"
                        ));
                        keep(store.as_ref(), false, why.to_string());
                    }
                },
            },
        }
        AccelPolicy {
            choice,
            state: Mutex::new(state),
            store: policy_store,
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The accelerator a guest of the host's architecture would get now.
    pub fn accel(&self) -> Accel {
        self.state().accel
    }

    /// What the run says once about its accelerator (the report's note), if anything.
    pub fn note(&self) -> Option<String> {
        self.state().note.clone()
    }

    /// How the next guest of the host's architecture starts. The injected silent attempt is
    /// handed out once, to the first caller.
    pub fn start(&self) -> Start {
        let mut s = self.state();
        let on_trial = self.choice == AccelChoice::Auto && s.accel == Accel::Kvm && !s.proven;
        if on_trial && s.inject {
            s.inject = false;
            return Start {
                accel: Accel::Tcg,
                on_trial,
                paused: true,
            };
        }
        Start {
            accel: s.accel,
            on_trial,
            paused: false,
        }
    }

    /// A guest on trial showed a sign of life under KVM: KVM is proven for the run (and the
    /// verdict kept, once).
    pub fn spoke(&self) {
        let mut s = self.state();
        if s.accel == Accel::Kvm && !s.proven {
            s.proven = true;
            keep(self.store.as_ref(), true, "a guest ran under KVM".into());
        }
    }

    /// A guest on trial stayed silent for `waited` (`injected`: it was the paused one): KVM is
    /// given up for the rest of the run. Returns the note to say, to the first caller only.
    /// After another guest has spoken under KVM, a real guest's silence is that guest's slowness,
    /// not KVM's: nothing is given up (the guest starts again, under KVM).
    pub fn silent(&self, waited: Duration, injected: bool) -> Option<String> {
        let mut s = self.state();
        if s.accel != Accel::Kvm || self.choice != AccelChoice::Auto || (s.proven && !injected) {
            return None;
        }
        s.accel = Accel::Tcg;
        let why = if injected {
            format!(
                "a guest under KVM sent nothing within {} s; injected by {FAULT_KVM_SILENT}=1, \
                 a paused guest",
                waited.as_secs()
            )
        } else {
            format!(
                "a guest under KVM sent nothing within {} s, though the probe's vCPU ran 64-bit \
                 paged code; a KVM guest speaks within a second",
                waited.as_secs()
            )
        };
        keep(self.store.as_ref(), false, why.clone());
        let note = format!(
            "KVM cannot run a guest here ({why}); KVM declared unusable: this guest and every \
             later one run under TCG (slower)"
        );
        s.note = Some(note.clone());
        Some(note)
    }

    /// Another guest has spoken under KVM: a real guest still on trial is on trial no more.
    pub fn proven(&self) -> bool {
        self.state().proven
    }

    /// KVM was given up while a guest was on trial: stop it and start it again.
    pub fn gave_up(&self) -> bool {
        self.choice == AccelChoice::Auto && self.state().accel == Accel::Tcg
    }
}

/// Keeps a verdict. Losing it costs the next run its decision again, never a result, so a
/// failure to write is not an error of the run.
fn keep(store: Option<&(PathBuf, Key)>, usable: bool, reason: String) {
    if let Some((path, key)) = store {
        let _ = kvm_verdict::save(
            path,
            &Verdict {
                key: key.clone(),
                usable,
                reason,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(injected: bool) -> Key {
        Key {
            host_kernel: "6.1.0-40-amd64".into(),
            qemu: "QEMU emulator version 7.2.19".into(),
            cpu: "Some CPU".into(),
            injected,
        }
    }

    fn store(dir: &tempfile::TempDir, injected: bool) -> Option<(PathBuf, Key)> {
        Some((dir.path().join(kvm_verdict::FILE), key(injected)))
    }

    fn kept(dir: &tempfile::TempDir, injected: bool) -> Option<Verdict> {
        kvm_verdict::load(&dir.path().join(kvm_verdict::FILE), &key(injected))
    }

    fn refused() -> Result<(), crate::kvm::Unusable> {
        Err(crate::kvm::Unusable(
            "KVM_SET_MSRS: MSR 0x10a refused".into(),
        ))
    }

    #[test]
    fn auto_uses_kvm_only_when_the_probe_ran_a_vcpu_and_keeps_a_refusal() {
        let dir = tempfile::tempdir().unwrap();
        let ok = AccelPolicy::decide(AccelChoice::Auto, store(&dir, false), false, || Ok(()));
        assert_eq!((ok.accel(), ok.note()), (Accel::Kvm, None));
        assert_eq!(
            kept(&dir, false),
            None,
            "a probe alone proves nothing to keep"
        );
        let broken = AccelPolicy::decide(AccelChoice::Auto, store(&dir, false), false, refused);
        assert_eq!(broken.accel(), Accel::Tcg);
        let note = broken.note().expect("the fallback is said");
        assert!(note.contains("MSR 0x10a") && note.contains("TCG"), "{note}");
        let v = kept(&dir, false).expect("the refusal is kept");
        assert!(!v.usable && v.reason.contains("MSR 0x10a"), "{v:?}");
        assert_eq!(
            broken.start(),
            Start {
                accel: Accel::Tcg,
                on_trial: false,
                paused: false
            }
        );
    }

    #[test]
    fn a_kept_refusal_skips_the_probe_and_the_trial() {
        let dir = tempfile::tempdir().unwrap();
        AccelPolicy::decide(AccelChoice::Auto, store(&dir, false), false, refused);
        let again = AccelPolicy::decide(AccelChoice::Auto, store(&dir, false), false, || {
            panic!("probed although the cache knew")
        });
        assert_eq!(again.accel(), Accel::Tcg);
        let note = again.note().unwrap();
        assert!(
            note.starts_with("KVM cannot run a guest here (found by an earlier run: KVM_SET_MSRS")
                && note.contains(kvm_verdict::FILE),
            "{note}"
        );
        // A kept "usable" is no reason to skip the probe (ms): /dev/kvm may have gone.
        kvm_verdict::save(
            &dir.path().join(kvm_verdict::FILE),
            &Verdict {
                key: key(false),
                usable: true,
                reason: "a guest ran under KVM".into(),
            },
        )
        .unwrap();
        let probed = AccelPolicy::decide(AccelChoice::Auto, store(&dir, false), false, refused);
        assert_eq!(probed.accel(), Accel::Tcg);
    }

    #[test]
    fn a_silent_guest_on_trial_gives_kvm_up_once_for_every_worker() {
        let dir = tempfile::tempdir().unwrap();
        let p = AccelPolicy::decide(AccelChoice::Auto, store(&dir, false), false, || Ok(()));
        // Two workers start guests on trial at once.
        let (a, b) = (p.start(), p.start());
        for s in [a, b] {
            assert_eq!((s.accel, s.on_trial, s.paused), (Accel::Kvm, true, false));
        }
        assert!(!p.gave_up());
        let note = p.silent(KVM_SILENCE, false).expect("the first says it");
        assert!(
            note.contains("within 5 s") && note.contains("declared unusable"),
            "{note}"
        );
        assert_eq!(p.note(), Some(note));
        // The other worker's guest is told to stop; its own silence adds nothing.
        assert!(p.gave_up());
        assert_eq!(p.silent(KVM_SILENCE, false), None);
        assert_eq!(
            p.start(),
            Start {
                accel: Accel::Tcg,
                on_trial: false,
                paused: false
            }
        );
        let v = kept(&dir, false).unwrap();
        assert!(!v.usable && v.reason.contains("sent nothing"), "{v:?}");
    }

    #[test]
    fn a_guest_that_speaks_proves_kvm_and_ends_the_trial() {
        let dir = tempfile::tempdir().unwrap();
        let p = AccelPolicy::decide(AccelChoice::Auto, store(&dir, false), false, || Ok(()));
        assert!(p.start().on_trial);
        p.spoke();
        assert_eq!(
            p.start(),
            Start {
                accel: Accel::Kvm,
                on_trial: false,
                paused: false
            }
        );
        assert!(kept(&dir, false).unwrap().usable);
        assert_eq!(p.note(), None);
    }

    #[test]
    fn a_slow_guest_after_kvm_was_proven_gives_nothing_up() {
        let dir = tempfile::tempdir().unwrap();
        let p = AccelPolicy::decide(AccelChoice::Auto, store(&dir, false), false, || Ok(()));
        let (_fast, slow) = (p.start(), p.start());
        assert!(slow.on_trial && !p.proven());
        p.spoke();
        assert!(p.proven());
        assert_eq!(p.silent(KVM_SILENCE, false), None);
        assert_eq!((p.accel(), p.note()), (Accel::Kvm, None));
        assert!(kept(&dir, false).unwrap().usable);
    }

    #[test]
    fn the_injected_fault_is_one_paused_attempt_on_trial_whatever_the_host() {
        let dir = tempfile::tempdir().unwrap();
        // A refusal kept by a real run is ignored, and the probe is not asked.
        kvm_verdict::save(
            &dir.path().join(kvm_verdict::FILE),
            &Verdict {
                key: key(true),
                usable: false,
                reason: "earlier".into(),
            },
        )
        .unwrap();
        let p = AccelPolicy::decide(AccelChoice::Auto, store(&dir, true), true, || {
            panic!("probed under injection")
        });
        let first = p.start();
        assert_eq!(
            first,
            Start {
                accel: Accel::Tcg,
                on_trial: true,
                paused: true
            }
        );
        // A second worker's guest is a real KVM attempt on trial.
        assert!(!p.start().paused);
        let note = p.silent(KVM_SILENCE, true).unwrap();
        assert!(note.contains(FAULT_KVM_SILENT), "{note}");
        let v = kept(&dir, true).unwrap();
        assert!(!v.usable && v.key.injected, "{v:?}");
        assert_eq!(
            kept(&dir, false),
            None,
            "no real run trusts an injected verdict"
        );
    }

    #[test]
    fn an_explicit_choice_is_never_second_guessed_nor_probed_nor_watched() {
        for (choice, accel) in [
            (AccelChoice::Kvm, Accel::Kvm),
            (AccelChoice::Tcg, Accel::Tcg),
        ] {
            let p = AccelPolicy::decide(choice, None, true, || panic!("probed for {choice:?}"));
            assert_eq!((p.accel(), p.note()), (accel, None));
            assert_eq!(
                p.start(),
                Start {
                    accel,
                    on_trial: false,
                    paused: false
                }
            );
            assert_eq!(p.silent(KVM_SILENCE, false), None);
            assert!(!p.gave_up());
        }
    }

    #[test]
    fn the_real_probe_gives_a_verdict_with_its_reason() {
        // Whatever this host can do, the probe answers (its cost is `cargo xtask bench`'s to
        // measure): a vCPU that ran, or why none could.
        if let Err(why) = crate::kvm::probe() {
            assert!(!why.to_string().is_empty());
        }
    }
}
