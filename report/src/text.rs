//! Text helpers every renderer shares: guest text made inert in Markdown, clipped to a length.

/// Text from a guest, made inert in Markdown and in a table cell: a kernel's message can hold
/// `|`, backticks or `<script>`, and must neither break the table nor inject HTML.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\n' | '\r' => out.push(' '),
            '\\' | '`' | '*' | '_' | '[' | ']' | '|' | '#' | '~' => {
                out.push('\\');
                out.push(ch);
            }
            c => out.push(c),
        }
    }
    out
}

/// A check id as code; one with a backtick in it (never from this harness, but the text is a
/// guest's) falls back to escaped plain text. Pipes are escaped even in code spans (GFM tables
/// split on them otherwise).
pub fn code(s: &str) -> String {
    if s.contains('`') || s.contains('\n') || s.contains('<') {
        escape(s)
    } else {
        format!("`{}`", s.replace('|', "\\|"))
    }
}

/// At most `n` characters: one runaway message must not blow up the report.
pub fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(n).collect::<String>())
    }
}
