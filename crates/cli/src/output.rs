//! Output renderers: `-w simple|json|table`, as etcdctl's.

use std::io::Write;

use clap::ValueEnum;

/// The `-w/--write-out` choices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Human-readable lines.
    Simple,
    /// One JSON object.
    Json,
    /// A bordered table of fields.
    Table,
}

/// Prints `rows` (field, value) as a two-column table.
pub fn table(out: &mut impl Write, rows: &[(&str, String)]) -> std::io::Result<()> {
    let key_width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    let value_width = rows.iter().map(|(_, v)| v.chars().count()).max().unwrap_or(0);
    let rule = format!("+{}+{}+", "-".repeat(key_width + 2), "-".repeat(value_width + 2));
    writeln!(out, "{rule}")?;
    for (key, value) in rows {
        writeln!(out, "| {key:<key_width$} | {value:<value_width$} |")?;
    }
    writeln!(out, "{rule}")
}

/// Prints `value` as pretty JSON and a newline.
pub fn json(out: &mut impl Write, value: &impl serde::Serialize) -> anyhow::Result<()> {
    serde_json::to_writer_pretty(&mut *out, value)?;
    writeln!(out)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_columns() {
        let mut out = Vec::new();
        table(&mut out, &[("file", "a.db".into()), ("revision", "12".into())]).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "+----------+------+\n| file     | a.db |\n| revision | 12   |\n+----------+------+\n"
        );
    }
}
