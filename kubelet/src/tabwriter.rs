//! Go's text/tabwriter (no flags, space padding), which kubectl prints
//! its tables and `describe` through: a cell is text ended by a tab; a
//! column's width is set per block of consecutive lines that have that
//! column; text after a line's last tab is not padded.

/// Lay out `text` with `minwidth` and `padding` as tabwriter.NewWriter(w,
/// minwidth, 8, padding, ' ', 0) would.
pub fn align(text: &str, minwidth: usize, padding: usize) -> String {
    let mut lines: Vec<Vec<&str>> = text.split('\n').map(|l| l.split('\t').collect()).collect();
    // A trailing newline leaves one empty last "line": it is not a line.
    let ends_with_newline = text.ends_with('\n');
    if ends_with_newline {
        lines.pop();
    }
    let mut out = String::with_capacity(text.len() * 2);
    let mut widths: Vec<usize> = Vec::new();
    format(
        &lines,
        0,
        lines.len(),
        &mut widths,
        minwidth,
        padding,
        &mut out,
    );
    if !ends_with_newline && out.ends_with('\n') {
        out.pop();
    }
    out
}

fn width(s: &str) -> usize {
    s.chars().count()
}

fn format(
    lines: &[Vec<&str>],
    mut line0: usize,
    line1: usize,
    widths: &mut Vec<usize>,
    minwidth: usize,
    padding: usize,
    out: &mut String,
) {
    let column = widths.len();
    let mut this = line0;
    while this < line1 {
        // Lines whose cells end before this column are printed as they are.
        if column + 1 >= lines[this].len() {
            this += 1;
            continue;
        }
        write_lines(lines, line0, this, widths, out);
        line0 = this;
        let mut w = minwidth;
        while this < line1 && column + 1 < lines[this].len() {
            w = w.max(width(lines[this][column]) + padding);
            this += 1;
        }
        widths.push(w);
        format(lines, line0, this, widths, minwidth, padding, out);
        widths.pop();
        line0 = this;
    }
    write_lines(lines, line0, line1, widths, out);
}

fn write_lines(
    lines: &[Vec<&str>],
    line0: usize,
    line1: usize,
    widths: &[usize],
    out: &mut String,
) {
    for line in &lines[line0..line1] {
        for (j, cell) in line.iter().enumerate() {
            out.push_str(cell);
            if j + 1 < line.len() {
                // A tab-terminated cell: padded to its column's width.
                let w = widths.get(j).copied().unwrap_or(0);
                out.extend(std::iter::repeat_n(' ', w.saturating_sub(width(cell))));
            }
        }
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::align;

    #[test]
    fn blocks_align_independently() {
        let text =
            "Name:\tweb\nNamespace:\tdefault\nIPs:\n  IP:\t10.0.0.1\nQoS Class:\tBestEffort\n";
        assert_eq!(
            align(text, 0, 2),
            // A line without a tab ends a block: "  IP:" aligns with the lines after it.
            "Name:       web\nNamespace:  default\nIPs:\n  IP:       10.0.0.1\nQoS Class:  BestEffort\n"
        );
    }

    #[test]
    fn nested_columns_and_trailing_text() {
        let text = "a\tb\tc\naaa\tbbbb\nx\n";
        // "bbbb" ends no cell, so it does not widen column 1.
        assert_eq!(align(text, 0, 1), "a   b c\naaa bbbb\nx\n");
        assert_eq!(
            align("NAME\tAGE\nweb\t5s\n", 6, 3),
            "NAME   AGE\nweb    5s\n"
        );
    }
}
