//! The printed table: one line per workload, statelog's figure beside each other engine's,
//! and the ratio of statelog to the best other engine.

use crate::util::progress;

#[derive(Clone, Copy, PartialEq)]
pub enum Better {
    Higher,
    Lower,
    Neither,
}

#[derive(Clone, Default)]
pub struct Cell {
    v: Option<f64>,
    note: String,
    /// Shown but left out of the last column's comparison (a figure that does not give the
    /// row's guarantee, such as a commit that is not durable when it returns).
    not_compared: bool,
}

pub fn c(v: f64) -> Cell {
    Cell {
        v: Some(v),
        note: String::new(),
        not_compared: false,
    }
}

pub fn cn(v: f64, note: &str) -> Cell {
    Cell {
        v: Some(v),
        note: note.into(),
        not_compared: false,
    }
}

/// A figure shown with its note but not compared (see [`Cell::not_compared`]).
pub fn shown(v: f64, note: &str) -> Cell {
    Cell {
        not_compared: true,
        ..cn(v, note)
    }
}

pub fn na() -> Cell {
    Cell::default()
}

pub const OTHERS: [&str; 3] = ["SQLite FULL", "SQLite NORMAL", "redb"];

pub struct Line {
    what: String,
    decimals: usize,
    better: Better,
    ours: Cell,
    others: [Cell; 3],
    /// The target for this row and whether the figure meets it.
    target: Option<String>,
}

pub fn fmt_num(v: f64, decimals: usize) -> String {
    if !v.is_finite() {
        return format!("{v}");
    }
    let s = format!("{:.*}", decimals, v.abs());
    let (int, frac) = s.split_once('.').map_or((s.as_str(), ""), |(i, f)| (i, f));
    let mut grouped = String::new();
    for (i, ch) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(ch);
    }
    let sign = if v < 0.0 { "-" } else { "" };
    if frac.is_empty() {
        format!("{sign}{grouped}")
    } else {
        format!("{sign}{grouped}.{frac}")
    }
}

impl Line {
    fn cell(&self, c: &Cell) -> String {
        match c.v {
            None => "-".into(),
            Some(v) if c.note.is_empty() => fmt_num(v, self.decimals),
            Some(v) => format!("{} ({})", fmt_num(v, self.decimals), c.note),
        }
    }

    /// How many times better statelog is than the best other engine (above 1: statelog is
    /// better), and that engine.
    fn ratio(&self) -> String {
        let Some(ours) = self.ours.v else {
            return "-".into();
        };
        let others = OTHERS
            .iter()
            .zip(&self.others)
            .filter(|(_, c)| !c.not_compared)
            .filter_map(|(name, c)| Some((*name, c.v?)));
        let best = match self.better {
            Better::Neither => None,
            Better::Higher => others.max_by(|a, b| a.1.total_cmp(&b.1)),
            Better::Lower => others.min_by(|a, b| a.1.total_cmp(&b.1)),
        };
        match best {
            None => "-".into(),
            Some((name, v)) => {
                let r = if self.better == Better::Higher {
                    ours / v
                } else {
                    v / ours
                };
                format!("{r:.2}x vs {name}")
            }
        }
    }
}

#[derive(Default)]
pub struct Report {
    lines: Vec<Line>,
}

impl Report {
    pub fn add(
        &mut self,
        what: &str,
        decimals: usize,
        better: Better,
        ours: Cell,
        others: [Cell; 3],
    ) {
        let line = Line {
            what: what.into(),
            decimals,
            better,
            ours,
            others,
            target: None,
        };
        progress(&format!(
            "{what}: statelog {} | {} | {} | {} | {}",
            line.cell(&line.ours),
            line.cell(&line.others[0]),
            line.cell(&line.others[1]),
            line.cell(&line.others[2]),
            line.ratio()
        ));
        self.lines.push(line);
    }

    /// Sets the last row's target cell: `what`, and whether the row's figure meets it.
    pub fn target(&mut self, what: &str, met: bool) {
        let cell = format!("{what}: {}", if met { "met" } else { "missed" });
        progress(&format!("  target {cell}"));
        self.lines.last_mut().expect("a row").target = Some(cell);
    }

    pub fn print(&self) {
        let mut table: Vec<Vec<String>> = vec![
            [
                "workload",
                "statelog",
                OTHERS[0],
                OTHERS[1],
                OTHERS[2],
                "statelog vs best other",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        ];
        // A target column only in a table with targets.
        let targets = self.lines.iter().any(|l| l.target.is_some());
        if targets {
            table[0].push("target".into());
        }
        for l in &self.lines {
            let mut cells = vec![l.what.clone(), l.cell(&l.ours)];
            cells.extend(l.others.iter().map(|c| l.cell(c)));
            cells.push(l.ratio());
            if targets {
                cells.push(l.target.clone().unwrap_or_else(|| "-".into()));
            }
            table.push(cells);
        }
        let last = table[0].len() - 1;
        let widths: Vec<usize> = (0..table[0].len())
            .map(|i| table.iter().map(|r| r[i].chars().count()).max().unwrap())
            .collect();
        let line = |cells: &[String]| {
            let parts: Vec<String> = cells
                .iter()
                .zip(&widths)
                .enumerate()
                .map(|(i, (s, w))| {
                    if i == 0 || (targets && i == last) {
                        format!("{s:<w$}")
                    } else {
                        format!("{s:>w$}")
                    }
                })
                .collect();
            println!("| {} |", parts.join(" | "));
        };
        line(&table[0]);
        // Markdown: the first column (and the target) left-aligned, the figures right-aligned.
        let rule: Vec<String> = widths
            .iter()
            .enumerate()
            .map(|(i, w)| {
                if i == 0 || (targets && i == last) {
                    "-".repeat(w + 2)
                } else {
                    format!("{}:", "-".repeat(w + 1))
                }
            })
            .collect();
        println!("|{}|", rule.join("|"));
        for r in &table[1..] {
            line(r);
        }
    }
}
