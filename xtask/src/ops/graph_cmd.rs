//! `cargo xtask graph`: draw the runtime graph (who calls whom, from
//! `service-matrix.yaml`) or the chart dependency graph, as Mermaid or DOT,
//! and keep the diagrams embedded in README.md up to date.
//!
//! README.md embeds a diagram between `<!-- graph:VIEW:start -->` and
//! `<!-- graph:VIEW:end -->` (VIEW is `runtime` or `charts`). `--write`
//! regenerates every such block; `--check` fails when one differs from what
//! would be generated, like the other generated files of the repository, so
//! the picture people read cannot drift from the matrix it claims to show.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context as _, Result};

use crate::core::context::Context;
use crate::core::graph::ChartGraph;
use crate::core::matrix::ServiceMatrix;
use crate::core::model::{ChartKind, Repo};
use crate::util::exit;

/// The file whose marked blocks `--write` and `--check` maintain.
pub const README: &str = "README.md";

/// Options of `cargo xtask graph`.
#[derive(Debug, Clone)]
pub struct Opts {
    /// The diagram language. (Not `--format`: that global flag picks
    /// human or JSON output for every command, and one flag cannot take both
    /// sets of values.)
    /// Set by the global `--format mermaid|dot` (mermaid for the default `human`).
    pub graph_format: GraphFormat,
    /// `runtime`: services and the services they call (service-matrix.yaml);
    /// `charts`: charts and the charts they depend on.
    pub view: View,
    /// Regenerate every `<!-- graph:VIEW:start/end -->` block of README.md.
    pub write: bool,
    /// Fail (exit 1) when a diagram block of README.md is out of date.
    pub check: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum GraphFormat {
    Mermaid,
    Dot,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum View {
    Runtime,
    Charts,
}

impl View {
    fn parse(name: &str) -> Option<View> {
        match name {
            "runtime" => Some(View::Runtime),
            "charts" => Some(View::Charts),
            _ => None,
        }
    }
}

pub fn run(args: Opts, ctx: &Context) -> Result<()> {
    if args.write || args.check {
        return readme(ctx, args.check);
    }
    let format = match ctx.format {
        crate::core::context::Format::Dot => GraphFormat::Dot,
        _ => args.graph_format,
    };
    let text = render(ctx, args.view, format)?;
    print!("{text}");
    Ok(())
}

/// The diagram of one view in one format.
pub fn render(ctx: &Context, view: View, format: GraphFormat) -> Result<String> {
    match view {
        View::Runtime => {
            let file = &ctx.config.service_matrix;
            let matrix = match ServiceMatrix::load(&ctx.root, file)? {
                Some(matrix) => matrix,
                None => {
                    return exit::usage(format!(
                        "{file} does not exist: the runtime view is drawn from the service matrix (use --view charts for the chart graph)"
                    ))
                }
            };
            let problems = matrix.problems(file);
            if !problems.is_empty() {
                anyhow::bail!("cannot draw the runtime graph:\n{}", problems.join("\n"));
            }
            Ok(runtime(&matrix, format))
        }
        View::Charts => {
            let repo = Repo::discover(&ctx.root, &ctx.config)?;
            let graph = ChartGraph::build(&repo);
            Ok(charts(&repo, &graph, format))
        }
    }
}

/// A node of either view.
struct Node {
    id: String,
    label: String,
    /// Drawn as a cylinder: a data store.
    store: bool,
}

/// The runtime graph: one node per service, grouped by tier in the order the
/// tiers first appear in the matrix, an edge from each service to each
/// service it calls, and the ingress in front of exposed services.
pub fn runtime(matrix: &ServiceMatrix, format: GraphFormat) -> String {
    let mut groups: Vec<(String, Vec<Node>)> = Vec::new();
    for service in &matrix.services {
        let tier = service.tier.clone().unwrap_or_else(|| "other".to_string());
        let label = match service.port {
            Some(port) => format!("{} :{port}", service.name),
            None => service.name.clone(),
        };
        let node = Node { id: node_id(&service.name), label, store: service.is_infrastructure() };
        match groups.iter_mut().find(|(t, _)| *t == tier) {
            Some((_, nodes)) => nodes.push(node),
            None => groups.push((tier, vec![node])),
        }
    }
    let exposed: Vec<String> =
        matrix.services.iter().filter(|s| s.exposed == Some(true)).map(|s| node_id(&s.name)).collect();
    let mut edges: Vec<(String, String, bool)> = Vec::new();
    for id in &exposed {
        edges.push(("ingress".to_string(), id.clone(), false));
    }
    for (from, to) in matrix.edges() {
        edges.push((node_id(&from), node_id(&to), false));
    }
    let extra = if exposed.is_empty() {
        Vec::new()
    } else {
        vec![Node { id: "ingress".into(), label: "ingress".into(), store: false }]
    };
    draw("runtime", &groups, &extra, &edges, format)
}

/// The chart graph: one node per chart grouped by kind, an edge from each
/// chart to each chart it depends on; remote dependencies (the Bitnami
/// charts) are drawn with their version and a dashed edge.
pub fn charts(repo: &Repo, graph: &ChartGraph, format: GraphFormat) -> String {
    let kinds = [ChartKind::Umbrella, ChartKind::Application, ChartKind::Library];
    let order = graph.topological();
    let mut groups: Vec<(String, Vec<Node>)> = Vec::new();
    for kind in kinds {
        let nodes: Vec<Node> = order
            .iter()
            .rev()
            .map(|&i| &repo.charts[i])
            .filter(|c| c.kind == kind)
            .map(|c| Node { id: node_id(&c.name), label: format!("{} {}", c.name, c.version), store: false })
            .collect();
        if !nodes.is_empty() {
            groups.push((kind.as_str().to_string(), nodes));
        }
    }
    let mut remote: BTreeMap<String, Node> = BTreeMap::new();
    let mut edges: Vec<(String, String, bool)> = Vec::new();
    for &index in order.iter().rev() {
        let chart = &repo.charts[index];
        let mut deps: Vec<usize> = graph.dependencies(index);
        deps.sort_by_key(|&d| &repo.charts[d].name);
        for dep in deps {
            edges.push((node_id(&chart.name), node_id(&repo.charts[dep].name), false));
        }
        for dep in chart.meta.dependencies.iter().filter(|d| d.remote_repository().is_some()) {
            let version = dep.version.clone().unwrap_or_default();
            let id = node_id(&format!("{}-{}", dep.name, version));
            remote.entry(id.clone()).or_insert_with(|| Node {
                id: id.clone(),
                label: format!("{} {}", dep.name, version),
                store: false,
            });
            edges.push((node_id(&chart.name), id, true));
        }
    }
    if !remote.is_empty() {
        groups.push(("remote".to_string(), remote.into_values().collect()));
    }
    draw("charts", &groups, &[], &edges, format)
}

fn draw(
    name: &str,
    groups: &[(String, Vec<Node>)],
    extra: &[Node],
    edges: &[(String, String, bool)],
    format: GraphFormat,
) -> String {
    let mut out = String::new();
    match format {
        GraphFormat::Mermaid => {
            out.push_str("flowchart LR\n");
            for node in extra {
                out.push_str(&format!("  {}((\"{}\"))\n", node.id, node.label));
            }
            for (group, nodes) in groups {
                out.push_str(&format!("  subgraph {}[\"{}\"]\n", node_id(&format!("group-{group}")), group));
                for node in nodes {
                    if node.store {
                        out.push_str(&format!("    {}[(\"{}\")]\n", node.id, node.label));
                    } else {
                        out.push_str(&format!("    {}[\"{}\"]\n", node.id, node.label));
                    }
                }
                out.push_str("  end\n");
            }
            for (from, to, dashed) in edges {
                let arrow = if *dashed { "-.->" } else { "-->" };
                out.push_str(&format!("  {from} {arrow} {to}\n"));
            }
        }
        GraphFormat::Dot => {
            out.push_str(&format!("digraph {name} {{\n  rankdir=LR;\n  node [shape=box];\n"));
            for node in extra {
                out.push_str(&format!("  {} [label={}, shape=circle];\n", quote(&node.id), quote(&node.label)));
            }
            for (group, nodes) in groups {
                out.push_str(&format!(
                    "  subgraph {} {{\n    label={};\n",
                    quote(&format!("cluster_{group}")),
                    quote(group)
                ));
                for node in nodes {
                    let shape = if node.store { ", shape=cylinder" } else { "" };
                    out.push_str(&format!("    {} [label={}{shape}];\n", quote(&node.id), quote(&node.label)));
                }
                out.push_str("  }\n");
            }
            for (from, to, dashed) in edges {
                let style = if *dashed { " [style=dashed]" } else { "" };
                out.push_str(&format!("  {} -> {}{style};\n", quote(from), quote(to)));
            }
            out.push_str("}\n");
        }
    }
    out
}

/// A Mermaid-safe node id: names are DNS labels, but `-` can read as part of
/// an arrow and some words (`end`, `graph`, ...) are keywords.
fn node_id(name: &str) -> String {
    let id: String = name.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
    const KEYWORDS: [&str; 11] = [
        "end",
        "graph",
        "subgraph",
        "flowchart",
        "style",
        "class",
        "classDef",
        "click",
        "linkStyle",
        "direction",
        "default",
    ];
    if KEYWORDS.iter().any(|k| k.eq_ignore_ascii_case(&id)) || id.starts_with(|c: char| c.is_ascii_digit()) {
        format!("n_{id}")
    } else {
        id
    }
}

fn quote(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The markers around a diagram block of README.md.
fn markers(view: &str) -> (String, String) {
    (format!("<!-- graph:{view}:start -->"), format!("<!-- graph:{view}:end -->"))
}

/// What goes between the markers of `view`: a fenced Mermaid block and a
/// note naming the command that generates it.
pub fn block(ctx: &Context, view: View) -> Result<String> {
    let name = match view {
        View::Runtime => "runtime",
        View::Charts => "charts",
    };
    let diagram = render(ctx, view, GraphFormat::Mermaid)?;
    Ok(format!(
        "\n<!-- generated by `cargo xtask graph --write` (--view {name}); `cargo xtask graph --check` fails when it is stale -->\n```mermaid\n{diagram}```\n"
    ))
}

/// The README text with every marked block regenerated, and the views found.
pub fn updated_readme(ctx: &Context, text: &str) -> Result<(String, Vec<String>)> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut views = Vec::new();
    while let Some(start) = rest.find("<!-- graph:") {
        let after = &rest[start + "<!-- graph:".len()..];
        let Some(colon) = after.find(':') else { break };
        let view_name = &after[..colon];
        let (open, close) = markers(view_name);
        if !rest[start..].starts_with(&open) {
            // A `<!-- graph:...` that is not a start marker (an end marker
            // without a start, or another comment): copy it and move on.
            out.push_str(&rest[..start + 1]);
            rest = &rest[start + 1..];
            continue;
        }
        let view = View::parse(view_name).ok_or_else(|| {
            anyhow::anyhow!("{README}: {open} names an unknown view {view_name:?}; the views are runtime and charts")
        })?;
        let body_start = start + open.len();
        let end = rest[body_start..].find(&close).ok_or_else(|| {
            anyhow::anyhow!("{README}: {open} has no matching {close}: add the end marker after the diagram")
        })?;
        out.push_str(&rest[..body_start]);
        out.push_str(&block(ctx, view)?);
        out.push_str(&close);
        rest = &rest[body_start + end + close.len()..];
        views.push(view_name.to_string());
    }
    out.push_str(rest);
    Ok((out, views))
}

/// `--write` and `--check`.
fn readme(ctx: &Context, check: bool) -> Result<()> {
    let path = ctx.root.join(README);
    let text = read_readme(&path)?;
    let (updated, views) = updated_readme(ctx, &text)?;
    if views.is_empty() {
        let (open, close) = markers("runtime");
        return exit::usage(format!(
            "{README} has no diagram block: put `{open}` and `{close}` on their own lines where the runtime diagram belongs, then run `cargo xtask graph --write`"
        ));
    }
    if check {
        if updated != text {
            eprintln!(
                "{README}: the diagram block(s) [{}] are out of date with {}; run `cargo xtask graph --write` and commit the result",
                views.join(", "),
                ctx.config.service_matrix
            );
            return Err(exit::ChecksFailed.into());
        }
        eprintln!("{README}: diagram block(s) [{}] up to date", views.join(", "));
        return Ok(());
    }
    if updated != text {
        crate::util::fs::write_atomic(&path, updated.as_bytes())?;
        eprintln!("{README}: regenerated diagram block(s) [{}]", views.join(", "));
    } else {
        eprintln!("{README}: diagram block(s) [{}] already up to date", views.join(", "));
    }
    Ok(())
}

fn read_readme(path: &Path) -> Result<String> {
    if !path.exists() {
        return exit::usage(format!("{README} does not exist at the repository root: create it with a diagram block"));
    }
    std::fs::read_to_string(path).with_context(|| format!("{README}: cannot read file"))
}
