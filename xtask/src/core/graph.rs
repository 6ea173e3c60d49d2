//! The chart dependency graph (petgraph): an edge from each chart to every
//! chart of the repository it depends on through `file://`, or through a
//! registry when in-repo resolution ([`crate::core::model::inrepo`]) matched a sibling.
//!
//! Problems are kept per chart ([`GraphIssue`]) rather than failing the whole
//! run, so one bad chart never hides the verdict on the others. Charts that
//! are part of a cycle or point at a missing folder are reported broken; the
//! rest of the graph is still ordered and checked.

use std::collections::{BTreeMap, BTreeSet};

use petgraph::algo::{tarjan_scc, toposort};
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::EdgeRef;
use petgraph::Direction;

use crate::core::model::Repo;

/// A problem with one chart's place in the graph.
#[derive(Debug, Clone)]
pub struct GraphIssue {
    pub chart: String,
    pub message: String,
}

/// Charts as nodes (weights are indices into `Repo::charts`), edges from a
/// dependency to the chart that needs it, so a topological order lists
/// dependencies first.
#[derive(Debug, Clone)]
pub struct ChartGraph {
    pub graph: DiGraph<usize, ()>,
    nodes: Vec<NodeIndex>,
    pub issues: Vec<GraphIssue>,
}

impl ChartGraph {
    pub fn build(repo: &Repo) -> ChartGraph {
        let mut graph = DiGraph::new();
        let nodes: Vec<NodeIndex> = (0..repo.charts.len()).map(|i| graph.add_node(i)).collect();
        let mut issues = Vec::new();
        let canonical: Vec<_> = repo.charts.iter().map(|c| c.dir.canonicalize().ok()).collect();

        for (index, chart) in repo.charts.iter().enumerate() {
            for dep in &chart.meta.dependencies {
                // `file://` dependencies, and remote ones that in-repo
                // resolution matched to a chart of the repository.
                let Some(target) = dep.local_dir(&chart.dir) else { continue };
                let shown = format!("{}/Chart.yaml", chart.rel);
                if !target.join("Chart.yaml").is_file() {
                    issues.push(GraphIssue {
                        chart: chart.name.clone(),
                        message: format!(
                            "{shown}: dependency {:?} points at {:?}, which is not a chart folder (no Chart.yaml there)",
                            dep.name,
                            dep.repository.as_deref().unwrap_or_default()
                        ),
                    });
                    continue;
                }
                let target = target.canonicalize().ok();
                match canonical.iter().position(|c| c.is_some() && *c == target) {
                    Some(dep_index) => {
                        let dep_chart = &repo.charts[dep_index];
                        if dep_chart.name != dep.name {
                            issues.push(GraphIssue {
                                chart: chart.name.clone(),
                                message: format!(
                                    "{shown}: dependency {:?} points at {}, whose chart is named {:?}",
                                    dep.name, dep_chart.rel, dep_chart.name
                                ),
                            });
                        }
                        graph.update_edge(nodes[dep_index], nodes[index], ());
                    }
                    None => {
                        let broken = repo.broken.iter().find(|b| repo.root.join(&b.rel).canonicalize().ok() == target);
                        let message = match broken {
                            Some(b) => {
                                format!("{shown}: dependency {:?} is the chart at {}, which is broken", dep.name, b.rel)
                            }
                            None => format!(
                                "{shown}: dependency {:?} ({}) is outside the chart directories",
                                dep.name,
                                dep.repository.as_deref().unwrap_or_default()
                            ),
                        };
                        issues.push(GraphIssue { chart: chart.name.clone(), message });
                    }
                }
            }
        }

        let mut result = ChartGraph { graph, nodes, issues };
        result.report_cycles(repo);
        result
    }

    /// Every strongly connected component with more than one chart (or a chart
    /// that depends on itself) is a cycle; each chart in it gets an issue that
    /// names the whole cycle.
    fn report_cycles(&mut self, repo: &Repo) {
        for component in tarjan_scc(&self.graph) {
            let self_loop = component.len() == 1 && self.graph.find_edge(component[0], component[0]).is_some();
            if component.len() < 2 && !self_loop {
                continue;
            }
            let mut names: Vec<String> = component.iter().map(|n| repo.charts[self.graph[*n]].name.clone()).collect();
            names.sort();
            let cycle = format!("{} -> {}", names.join(" -> "), names[0]);
            for name in &names {
                self.issues.push(GraphIssue { chart: name.clone(), message: format!("dependency cycle: {cycle}") });
            }
        }
    }

    /// Direct dependencies (repository charts) of a chart.
    pub fn dependencies(&self, chart: usize) -> Vec<usize> {
        self.graph.edges_directed(self.nodes[chart], Direction::Incoming).map(|e| self.graph[e.source()]).collect()
    }

    /// Direct dependents of a chart.
    pub fn dependents(&self, chart: usize) -> Vec<usize> {
        self.graph.edges_directed(self.nodes[chart], Direction::Outgoing).map(|e| self.graph[e.target()]).collect()
    }

    /// `start` plus everything that depends on it, transitively.
    pub fn with_dependents(&self, start: &BTreeSet<usize>) -> BTreeSet<usize> {
        self.closure(start, |c| self.dependents(c))
    }

    /// `start` plus everything it depends on, transitively.
    pub fn with_dependencies(&self, start: &BTreeSet<usize>) -> BTreeSet<usize> {
        self.closure(start, |c| self.dependencies(c))
    }

    fn closure(&self, start: &BTreeSet<usize>, next: impl Fn(usize) -> Vec<usize>) -> BTreeSet<usize> {
        let mut seen = start.clone();
        let mut stack: Vec<usize> = start.iter().copied().collect();
        while let Some(chart) = stack.pop() {
            for n in next(chart) {
                if seen.insert(n) {
                    stack.push(n);
                }
            }
        }
        seen
    }

    /// All charts in dependency order (dependencies first). Charts inside a
    /// cycle are left out: they are reported broken instead.
    pub fn topological(&self) -> Vec<usize> {
        match toposort(&self.graph, None) {
            Ok(order) => order.into_iter().map(|n| self.graph[n]).collect(),
            Err(_) => {
                // Order the acyclic part by repeatedly taking charts whose
                // dependencies are all placed (Kahn), skipping cycle members.
                let mut placed = BTreeSet::new();
                let mut order = Vec::new();
                let count = self.nodes.len();
                loop {
                    let before = order.len();
                    for chart in 0..count {
                        if !placed.contains(&chart) && self.dependencies(chart).iter().all(|d| placed.contains(d)) {
                            placed.insert(chart);
                            order.push(chart);
                        }
                    }
                    if order.len() == before {
                        return order;
                    }
                }
            }
        }
    }

    /// Each chart's depth: 0 for charts without repository dependencies.
    pub fn depths(&self) -> BTreeMap<usize, usize> {
        let mut depth = BTreeMap::new();
        for chart in self.topological() {
            let d = self.dependencies(chart).iter().filter_map(|p| depth.get(p)).max().map_or(0, |m| m + 1);
            depth.insert(chart, d);
        }
        depth
    }
}
