//! Output renderers: `-w simple|json|table`, as etcdctl's.

use std::io::Write;

use clap::ValueEnum;
use lifeboat_repo::Manifest;

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

/// Prints a header row and rows in left-aligned columns three spaces apart, without borders
/// (kubectl's `get` layout).
pub fn columns(out: &mut impl Write, header: &[&str], rows: &[Vec<String>]) -> std::io::Result<()> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let header: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (index, (cell, width)) in row.iter().zip(&widths).enumerate() {
            match index + 1 == row.len() {
                true => line.push_str(cell),
                false => line.push_str(&format!("{cell:<width$}   ")),
            }
        }
        writeln!(out, "{line}")?;
    }
    Ok(())
}

/// Prints a table with a header row, cells right-aligned (etcdctl's table printer).
pub fn grid(out: &mut impl Write, header: &[&str], rows: &[Vec<String>]) -> std::io::Result<()> {
    draw_grid(out, header, rows, &ASCII)
}

/// [`grid`] drawn with box characters, as etcdutl 3.7's table printer (tablewriter 1.x) draws it.
pub fn grid_boxed(out: &mut impl Write, header: &[&str], rows: &[Vec<String>]) -> std::io::Result<()> {
    draw_grid(out, header, rows, &BOXED)
}

/// The characters of a table: rule lines (left, joint, right, line) above, below the header
/// and below the rows, and the cell separator.
struct Drawing {
    top: [char; 4],
    middle: [char; 4],
    bottom: [char; 4],
    separator: char,
}

const ASCII: Drawing = Drawing {
    top: ['+', '+', '+', '-'],
    middle: ['+', '+', '+', '-'],
    bottom: ['+', '+', '+', '-'],
    separator: '|',
};

const BOXED: Drawing = Drawing {
    top: ['┌', '┬', '┐', '─'],
    middle: ['├', '┼', '┤', '─'],
    bottom: ['└', '┴', '┘', '─'],
    separator: '│',
};

fn draw_grid(
    out: &mut impl Write,
    header: &[&str],
    rows: &[Vec<String>],
    drawing: &Drawing,
) -> std::io::Result<()> {
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .chain([header[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let rule = |[left, joint, right, line]: [char; 4]| {
        let cells: Vec<String> = widths.iter().map(|w| line.to_string().repeat(w + 2)).collect();
        format!("{left}{}{right}", cells.join(&joint.to_string()))
    };
    let bar = drawing.separator;
    writeln!(out, "{}", rule(drawing.top))?;
    let cells: String = header
        .iter()
        .zip(&widths)
        .map(|(h, w)| format!("{bar} {h:^w$} "))
        .collect();
    writeln!(out, "{cells}{bar}\n{}", rule(drawing.middle))?;
    for row in rows {
        let cells: String = row
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{bar} {c:>w$} "))
            .collect();
        writeln!(out, "{cells}{bar}")?;
    }
    writeln!(out, "{}", rule(drawing.bottom))
}

/// Bytes in SI units as go-humanize prints them (`20 kB`, `676 MB`), like etcdutl.
pub fn si_bytes(bytes: u64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    if bytes < 10 {
        return format!("{bytes} B");
    }
    let exponent = ((bytes as f64).log10() / 3.0).floor() as usize;
    let exponent = exponent.min(UNITS.len() - 1);
    let value = (bytes as f64 / 1000f64.powi(exponent as i32) * 10.0 + 0.5).floor() / 10.0;
    if value < 10.0 {
        format!("{value:.1} {}", UNITS[exponent])
    } else {
        format!("{value:.0} {}", UNITS[exponent])
    }
}

/// A backup's manifest as (field, value) rows.
pub fn manifest_rows(manifest: &Manifest) -> Vec<(&'static str, String)> {
    let mut rows = vec![
        ("id", manifest.id.to_string()),
        ("created", manifest.created.clone()),
        ("kind", manifest.kind.clone()),
        ("host", manifest.host.clone()),
        ("tags", manifest.tags.join(",")),
        ("tool", manifest.tool.clone()),
    ];
    if let Some(etcd) = &manifest.etcd {
        rows.extend([
            ("cluster id", etcd.cluster_id.clone()),
            ("member id", etcd.member_id.clone()),
            ("endpoint", etcd.endpoint.clone()),
            ("etcd version", etcd.version.clone()),
            ("revision", etcd.revision.to_string()),
            ("live keys", etcd.live_keys.to_string()),
        ]);
    }
    for artefact in &manifest.artefacts {
        rows.extend([
            ("artefact", artefact.name.clone()),
            ("  object", artefact.key.clone()),
            (
                "  size",
                format!("{} ({})", artefact.plain_size, si_bytes(artefact.plain_size)),
            ),
            (
                "  stored",
                format!(
                    "{} ({}, {}, {})",
                    artefact.stored_size,
                    si_bytes(artefact.stored_size),
                    artefact.compression,
                    artefact.encryption
                ),
            ),
            ("  sha256", artefact.plain_sha256.clone()),
            ("  stored sha256", artefact.stored_sha256.clone()),
        ]);
    }
    rows
}

/// One line about a backup: what it holds and how big it is.
pub fn manifest_summary(manifest: &Manifest) -> String {
    let (plain, stored) = manifest
        .artefacts
        .iter()
        .fold((0, 0), |(p, s), a| (p + a.plain_size, s + a.stored_size));
    let etcd = manifest
        .etcd
        .as_ref()
        .map(|e| {
            format!(
                "revision {}, {} live keys, cluster {}, member {} ({}), etcd {}, ",
                e.revision, e.live_keys, e.cluster_id, e.member_id, e.endpoint, e.version
            )
        })
        .unwrap_or_default();
    format!("{etcd}{} stored as {}", si_bytes(plain), si_bytes(stored))
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
    fn si_bytes_matches_go_humanize() {
        for (bytes, text) in [
            (0, "0 B"),
            (9, "9 B"),
            (20480, "20 kB"),
            (589824, "590 kB"),
            (1500, "1.5 kB"),
            (675_901_472, "676 MB"),
            (999_999, "1000 kB"),
        ] {
            assert_eq!(si_bytes(bytes), text, "{bytes}");
        }
    }

    #[test]
    fn grid_centres_headers_and_right_aligns_cells() {
        let mut out = Vec::new();
        grid(
            &mut out,
            &["HASH", "REVISION"],
            &[vec!["5146c5e2".into(), "8".into()]],
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "+----------+----------+\n|   HASH   | REVISION |\n+----------+----------+\n| 5146c5e2 |        8 |\n+----------+----------+\n"
        );
    }

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
