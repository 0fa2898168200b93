//! The formats above the model: [`Report::markdown`], [`Report::html`], [`Report::junit`] and
//! [`Report::write_all`] call the renderers, which read the model; the model reads none of
//! them. Behind the `render` feature, so that a binary that only streams records (the guest's
//! harness) links none of them.

use std::path::Path;

use crate::model::{Report, FILES};

impl Report {
    pub fn markdown(&self) -> String {
        crate::markdown::render(self)
    }

    pub fn html(&self) -> String {
        crate::html::render(self)
    }

    pub fn junit(&self) -> String {
        crate::junit::render(self)
    }

    /// Writes every format ([`FILES`]) into `dir`, each under a temporary name first so that a
    /// reader never sees half a file.
    pub fn write_all(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        for (name, text) in
            FILES
                .iter()
                .zip([self.to_json(), self.markdown(), self.html(), self.junit()])
        {
            let tmp = dir.join(format!(".{name}.tmp"));
            std::fs::write(&tmp, text)?;
            std::fs::rename(&tmp, dir.join(name))?;
        }
        Ok(())
    }
}
