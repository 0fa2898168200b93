//! TODO
pub struct Diff;
impl Diff {
    pub fn new(_o: &crate::Report, _n: &crate::Report) -> Diff {
        Diff
    }
    pub fn markdown(&self) -> String {
        String::new()
    }
    pub fn text(&self) -> String {
        String::new()
    }
    pub fn is_empty(&self) -> bool {
        true
    }
}
