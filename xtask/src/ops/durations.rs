//! How long each chart took to check the last time it was checked: the
//! record `ci-matrix --max-jobs` balances its jobs by.
//!
//! `lint` writes one small file per chart it checked, named by the chart,
//! under `<work>/durations/` (next to `<work>/cache/`, not inside it, so a
//! CI job that restores an old verdict cache never uploads stale timings as
//! its own). A record is keyed by the chart's name rather than its content
//! key: a chart that changed has a new key and no verdict, but still its
//! previous duration, which is the best estimate of what it will cost now.
//! Charts answered by the cache keep the record of the run that checked
//! them; a chart never measured has none, and [`Durations::estimate`] gives
//! it the median of the ones that are known.
//!
//! A batched run checks many charts with one set of tool processes, so a
//! chart's duration is its share of its batch: the batch's wall time divided
//! by the number of charts in it. A CI job costs about the sum of its
//! charts' shares.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::core::outcome::{ChartResult, Status};
use crate::util::fs;

/// Bump when the meaning of a record changes.
const FORMAT: &str = "robot-shop-xtask durations v1";

/// The estimate for a chart when no chart of the repository was measured yet.
pub const UNMEASURED_MS: u64 = 1_000;

/// One chart's last measurement, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub format: String,
    pub chart: String,
    /// The chart's share of its batch: `batch_ms / batch_charts`.
    pub duration_ms: u64,
    /// Wall time of the whole batch it was checked in.
    pub batch_ms: u64,
    /// How many charts that batch checked.
    pub batch_charts: usize,
    /// The content key it was checked under.
    pub cache_key: Option<String>,
    /// When (RFC 3339, UTC).
    pub measured: String,
}

/// The folder of records, `<work>/durations`.
pub fn folder(work_dir: &Path) -> PathBuf {
    work_dir.join("durations")
}

/// Writes a record for every chart of `charts` that was checked in this run
/// (ok or failed, with a batch): a failure took its time too. Cached,
/// skipped and unkeyable charts keep their previous record.
pub fn record(work_dir: &Path, charts: &[ChartResult]) -> Result<()> {
    let dir = folder(work_dir);
    let mut batches: BTreeMap<usize, (u64, usize)> = BTreeMap::new();
    for chart in charts {
        if let Some(batch) = chart.batch {
            let entry = batches.entry(batch).or_insert((chart.finished_ms.saturating_sub(chart.started_ms), 0));
            entry.1 += 1;
        }
    }
    let measured = crate::util::time::rfc3339_now();
    for chart in charts {
        let (Some(batch), Status::Ok | Status::Failed) = (chart.batch, chart.status) else { continue };
        let (batch_ms, batch_charts) = batches[&batch];
        let record = Record {
            format: FORMAT.to_string(),
            chart: chart.name.clone(),
            duration_ms: batch_ms / batch_charts.max(1) as u64,
            batch_ms,
            batch_charts,
            cache_key: chart.cache_key.clone(),
            measured: measured.clone(),
        };
        let path = fs::join_inside(&dir, format!("{}.json", chart.name))?;
        fs::write_atomic(&path, &serde_json::to_vec_pretty(&record)?)?;
    }
    Ok(())
}

/// The records of a work folder, by chart name.
#[derive(Debug, Clone, Default)]
pub struct Durations {
    by_chart: BTreeMap<String, u64>,
}

impl Durations {
    /// Reads every sound record under `<work>/durations`; a record that does
    /// not parse, is of another format, or is filed under another chart's
    /// name is ignored (the chart is then estimated), never trusted.
    pub fn load(work_dir: &Path) -> Durations {
        let mut by_chart = BTreeMap::new();
        let Ok(entries) = std::fs::read_dir(folder(work_dir)) else { return Durations { by_chart } };
        for entry in entries.flatten() {
            let path = entry.path();
            let Some(stem) = path.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_suffix(".json")) else {
                continue;
            };
            let Ok(bytes) = std::fs::read(&path) else { continue };
            if let Ok(record) = serde_json::from_slice::<Record>(&bytes) {
                if record.format == FORMAT && record.chart == stem {
                    by_chart.insert(record.chart, record.duration_ms);
                }
            }
        }
        Durations { by_chart }
    }

    /// From known values, for tests.
    #[cfg(test)]
    pub fn from_map(by_chart: BTreeMap<String, u64>) -> Durations {
        Durations { by_chart }
    }

    /// The last measured duration of `chart`.
    pub fn measured(&self, chart: &str) -> Option<u64> {
        self.by_chart.get(chart).copied()
    }

    /// What to expect of each of `charts`: its measured duration, else the
    /// median of the measured ones among `charts` (else of all records,
    /// else [`UNMEASURED_MS`]), so an unknown chart counts as a typical one.
    pub fn estimate<'a>(&self, charts: impl IntoIterator<Item = &'a str> + Clone) -> BTreeMap<String, Estimate> {
        let mut known: Vec<u64> = charts.clone().into_iter().filter_map(|c| self.measured(c)).collect();
        if known.is_empty() {
            known = self.by_chart.values().copied().collect();
        }
        known.sort_unstable();
        let fallback = if known.is_empty() { UNMEASURED_MS } else { known[known.len() / 2] };
        charts
            .into_iter()
            .map(|c| {
                let estimate = match self.measured(c) {
                    Some(ms) => Estimate { ms, measured: true },
                    None => Estimate { ms: fallback, measured: false },
                };
                (c.to_string(), estimate)
            })
            .collect()
    }
}

/// A chart's expected duration, and whether it was measured or guessed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Estimate {
    pub ms: u64,
    pub measured: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(name: &str, batch: Option<usize>, status: Status, started: u64, finished: u64) -> ChartResult {
        ChartResult {
            name: name.into(),
            path: format!("charts/{name}"),
            kind: None,
            status,
            cache: None,
            cache_key: Some(format!("key-{name}")),
            batch,
            started_ms: started,
            finished_ms: finished,
            steps: Vec::new(),
        }
    }

    #[test]
    fn a_chart_gets_its_share_of_its_batch_and_cached_charts_keep_theirs() {
        let work = tempfile::tempdir().unwrap();
        let first = [
            result("a", Some(0), Status::Ok, 100, 700),
            result("b", Some(0), Status::Failed, 100, 700),
            result("c", Some(1), Status::Ok, 700, 1_000),
            result("d", Some(0), Status::Ok, 100, 700),
        ];
        record(work.path(), &first).unwrap();
        let loaded = Durations::load(work.path());
        assert_eq!(loaded.measured("a"), Some(200), "600 ms shared by three charts");
        assert_eq!(loaded.measured("b"), Some(200), "a failure took its time too");
        assert_eq!(loaded.measured("c"), Some(300));

        // c answered by the cache, a checked again alone: c keeps its record.
        let second = [result("a", Some(0), Status::Ok, 0, 50), result("c", None, Status::Cached, 0, 0)];
        record(work.path(), &second).unwrap();
        let loaded = Durations::load(work.path());
        assert_eq!(loaded.measured("a"), Some(50));
        assert_eq!(loaded.measured("c"), Some(300));
    }

    #[test]
    fn unsound_records_are_ignored_and_unknown_charts_are_typical() {
        let work = tempfile::tempdir().unwrap();
        record(work.path(), &[result("a", Some(0), Status::Ok, 0, 100)]).unwrap();
        let dir = folder(work.path());
        // A record filed under another chart's name, and a truncated one.
        std::fs::copy(dir.join("a.json"), dir.join("b.json")).unwrap();
        std::fs::write(dir.join("c.json"), b"{\"format\": tru").unwrap();
        let loaded = Durations::load(work.path());
        assert_eq!(loaded.measured("b"), None);
        assert_eq!(loaded.measured("c"), None);

        let known = Durations::from_map(BTreeMap::from([("x".into(), 10), ("y".into(), 30), ("z".into(), 500)]));
        let estimates = known.estimate(["x", "y", "z", "new"]);
        assert_eq!(estimates["new"], Estimate { ms: 30, measured: false }, "the median of the measured ones");
        assert_eq!(estimates["z"], Estimate { ms: 500, measured: true });
        assert_eq!(Durations::default().estimate(["new"])["new"].ms, UNMEASURED_MS);
    }
}
