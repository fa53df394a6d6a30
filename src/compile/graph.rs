//! The step graph: which step needs which, in what order steps may run, and drawings.
//!
//! Node `i` is step `i` of the plan (YAML order) and an edge `a → b` means "b needs a",
//! so edges point the way work flows. Building the graph reports every unknown `needs`
//! entry (with the closest existing id), every self-dependency and every cycle with its
//! full path; a graph that built is acyclic. The scheduler uses the queries
//! (`waves`, `dependencies`, `dependents`, `is_upstream`, `topological_order`).

use std::collections::{HashMap, VecDeque};
use std::fmt;

use petgraph::Direction;
use petgraph::graph::{DiGraph, NodeIndex};

use crate::plan::findings::sort_issues;
use crate::plan::model::Step;
use crate::plan::span::{Issue, PlanSource};

/// Why the steps do not form a DAG.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GraphError {
    /// A `needs` entry names no step.
    #[error("step `{step_id}` needs `{need}`, which is not a step of this plan")]
    UnknownNeed {
        /// Index of the step.
        step: usize,
        /// Its id.
        step_id: String,
        /// Position in its `needs`.
        need_index: usize,
        /// The unknown id.
        need: String,
        /// The closest existing id, when one is close.
        suggestion: Option<String>,
    },
    /// A step needs itself.
    #[error("step `{step_id}` needs itself")]
    SelfDependency {
        /// Index of the step.
        step: usize,
        /// Its id.
        step_id: String,
        /// Position in its `needs`.
        need_index: usize,
    },
    /// Steps need each other in a ring.
    #[error("dependency cycle: {}", .ids.join(" -> "))]
    Cycle {
        /// Step indexes along the cycle, each needing the next; the first is repeated
        /// at the end.
        path: Vec<usize>,
        /// The same as ids, for messages.
        ids: Vec<String>,
        /// For each step of the path but the last, the position in its `needs` of the
        /// next one.
        need_indexes: Vec<usize>,
    },
}

/// The DAG of a plan's steps.
#[derive(Debug, Clone)]
pub struct PlanGraph {
    graph: DiGraph<StepLabel, Needs>,
    /// Steps in a dependency-respecting order (YAML order among equals).
    order: Vec<usize>,
    /// Longest distance from a step without needs; steps of equal level form a wave.
    levels: Vec<usize>,
}

/// A node weight that prints as the bare step id, so DOT labels read `stop-web`
/// rather than the `"\"stop-web\""` Debug would give.
#[derive(Debug, Clone)]
struct StepLabel(String);

impl fmt::Display for StepLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The edge weight: "the target needs the source". It prints as nothing so DOT output
/// carries no edge labels.
#[derive(Debug, Clone, Copy)]
struct Needs;

impl fmt::Display for Needs {
    fn fmt(&self, _: &mut fmt::Formatter<'_>) -> fmt::Result {
        Ok(())
    }
}

impl PlanGraph {
    /// Builds the graph of `steps`, or every reason it is not a DAG. Duplicate ids are
    /// the validator's concern; here the first step with an id wins.
    pub fn build(steps: &[Step]) -> Result<PlanGraph, Vec<GraphError>> {
        let mut graph = DiGraph::with_capacity(steps.len(), steps.len());
        let mut by_id: HashMap<&str, usize> = HashMap::with_capacity(steps.len());
        for (i, step) in steps.iter().enumerate() {
            graph.add_node(StepLabel(step.id.clone()));
            by_id.entry(step.id.as_str()).or_insert(i);
        }
        let mut errors = Vec::new();
        // `linked_to[dep] == i` once the edge dep → i exists. Repeated needs would only
        // double-count in-degrees; asking `find_edge` instead walks the dependency's
        // whole edge list, which made a 50 000-step fan-out quadratic.
        let mut linked_to = vec![usize::MAX; steps.len()];
        for (i, step) in steps.iter().enumerate() {
            for (n, need) in step.needs.iter().enumerate() {
                match by_id.get(need.as_str()) {
                    Some(&dep) if dep == i => errors.push(GraphError::SelfDependency {
                        step: i,
                        step_id: step.id.clone(),
                        need_index: n,
                    }),
                    Some(&dep) => {
                        if linked_to[dep] != i {
                            linked_to[dep] = i;
                            graph.add_edge(NodeIndex::new(dep), NodeIndex::new(i), Needs);
                        }
                    }
                    None => errors.push(GraphError::UnknownNeed {
                        step: i,
                        step_id: step.id.clone(),
                        need_index: n,
                        need: need.clone(),
                        suggestion: crate::plan::vars::closest(
                            need,
                            steps.iter().map(|s| s.id.as_str()),
                        )
                        .map(str::to_owned),
                    }),
                }
            }
        }
        let (order, levels) = kahn_levels(&graph);
        // Kahn's order misses exactly the steps on or behind a cycle; only then is the
        // (costlier) component search needed.
        if order.len() < steps.len() {
            errors.extend(find_cycles(&graph, steps));
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(PlanGraph {
            graph,
            order,
            levels,
        })
    }

    /// Number of steps.
    pub fn len(&self) -> usize {
        self.graph.node_count()
    }

    /// The plan has no steps.
    pub fn is_empty(&self) -> bool {
        self.graph.node_count() == 0
    }

    /// Steps that can run together, level by level: wave 0 needs nothing, wave k needs
    /// only steps of earlier waves. Within a wave, YAML order.
    pub fn waves(&self) -> Vec<Vec<usize>> {
        let depth = self.levels.iter().copied().max().map_or(0, |m| m + 1);
        let mut waves = vec![Vec::new(); depth];
        for (step, &level) in self.levels.iter().enumerate() {
            waves[level].push(step);
        }
        waves
    }

    /// The wave (level) of `step`.
    pub fn wave_of(&self, step: usize) -> usize {
        self.levels[step]
    }

    /// Steps `step` needs directly, in index order.
    pub fn dependencies(&self, step: usize) -> Vec<usize> {
        self.neighbors(step, Direction::Incoming)
    }

    /// Steps that need `step` directly, in index order.
    pub fn dependents(&self, step: usize) -> Vec<usize> {
        self.neighbors(step, Direction::Outgoing)
    }

    fn neighbors(&self, step: usize, direction: Direction) -> Vec<usize> {
        let mut out: Vec<usize> = self
            .graph
            .neighbors_directed(NodeIndex::new(step), direction)
            .map(NodeIndex::index)
            .collect();
        out.sort_unstable();
        out
    }

    /// Every step that transitively depends on `step` (what to skip when it fails).
    pub fn descendants(&self, step: usize) -> Vec<usize> {
        let mut seen = vec![false; self.len()];
        let mut stack = vec![step];
        let mut out = Vec::new();
        while let Some(current) = stack.pop() {
            for next in self
                .graph
                .neighbors_directed(NodeIndex::new(current), Direction::Outgoing)
            {
                if !seen[next.index()] {
                    seen[next.index()] = true;
                    out.push(next.index());
                    stack.push(next.index());
                }
            }
        }
        out.sort_unstable();
        out
    }

    /// Whether `upstream` must finish before `step` starts (a transitive `needs`).
    /// The backwards search skips steps whose level is not above `upstream`'s: no path
    /// from `upstream` can pass through them, which keeps long chains cheap.
    pub fn is_upstream(&self, upstream: usize, step: usize) -> bool {
        if upstream == step || self.levels[upstream] >= self.levels[step] {
            return false;
        }
        let floor = self.levels[upstream];
        // A set rather than a bitmap: allocating one bit per step on every call would
        // make many checks quadratic in plan size.
        let mut seen = std::collections::HashSet::new();
        let mut stack = vec![step];
        while let Some(current) = stack.pop() {
            for prev in self
                .graph
                .neighbors_directed(NodeIndex::new(current), Direction::Incoming)
            {
                let p = prev.index();
                if p == upstream {
                    return true;
                }
                if self.levels[p] > floor && seen.insert(p) {
                    stack.push(p);
                }
            }
        }
        false
    }

    /// All steps, each after everything it needs.
    pub fn topological_order(&self) -> &[usize] {
        &self.order
    }

    /// Graphviz DOT, edges pointing from a step to the steps that need it.
    pub fn to_dot(&self) -> String {
        self.to_dot_with(&Drawing::default())
    }

    /// DOT with handlers' incoming edges dashed and gates drawn as hexagons.
    pub fn to_dot_with(&self, drawing: &Drawing) -> String {
        use petgraph::dot::{Config, Dot};
        use petgraph::visit::EdgeRef;
        format!(
            "{}",
            Dot::with_attr_getters(
                &self.graph,
                &[
                    Config::EdgeNoLabel,
                    Config::RankDir(petgraph::dot::RankDir::LR)
                ],
                &|_, edge| {
                    if drawing.is_handler(edge.target().index()) {
                        "style=dashed".to_owned()
                    } else {
                        String::new()
                    }
                },
                &|_, (node, _)| {
                    if drawing.is_gate(node.index()) {
                        "shape=hexagon".to_owned()
                    } else {
                        "shape=box".to_owned()
                    }
                },
            )
        )
    }

    /// A Mermaid flowchart, edges pointing from a step to the steps that need it.
    pub fn to_mermaid(&self) -> String {
        self.to_mermaid_with(&Drawing::default())
    }

    /// Mermaid with handlers' incoming edges dotted (`-.->`) and gates as hexagons.
    pub fn to_mermaid_with(&self, drawing: &Drawing) -> String {
        let mut out = String::from("flowchart LR\n");
        for node in self.graph.node_indices() {
            let label = mermaid_escape(&self.graph[node].0);
            let i = node.index();
            if drawing.is_gate(i) {
                out.push_str(&format!("    s{i}{{{{\"{label}\"}}}}\n"));
            } else {
                out.push_str(&format!("    s{i}[\"{label}\"]\n"));
            }
        }
        for edge in self.graph.edge_indices() {
            if let Some((from, to)) = self.graph.edge_endpoints(edge) {
                let arrow = if drawing.is_handler(to.index()) {
                    "-.->"
                } else {
                    "-->"
                };
                out.push_str(&format!("    s{} {arrow} s{}\n", from.index(), to.index()));
            }
        }
        out
    }
}

/// What a drawing marks: handler steps (their incoming edges are drawn dashed, since
/// they are followed on failure, not only on success) and approval gates.
#[derive(Debug, Clone, Default)]
pub struct Drawing {
    /// Per step, whether it is a handler.
    pub handlers: Vec<bool>,
    /// Per step, whether it is an approval gate.
    pub gates: Vec<bool>,
}

impl Drawing {
    fn is_handler(&self, i: usize) -> bool {
        self.handlers.get(i).copied().unwrap_or(false)
    }
    fn is_gate(&self, i: usize) -> bool {
        self.gates.get(i).copied().unwrap_or(false)
    }
}

fn mermaid_escape(text: &str) -> String {
    text.replace('&', "#amp;").replace('"', "#quot;")
}

/// Kahn's algorithm: a topological order (smallest index first among ready steps) and
/// each step's level.
fn kahn_levels(graph: &DiGraph<StepLabel, Needs>) -> (Vec<usize>, Vec<usize>) {
    let n = graph.node_count();
    let mut in_degree: Vec<usize> = (0..n)
        .map(|i| {
            graph
                .neighbors_directed(NodeIndex::new(i), Direction::Incoming)
                .count()
        })
        .collect();
    let mut levels = vec![0usize; n];
    let mut ready: std::collections::BinaryHeap<std::cmp::Reverse<usize>> = (0..n)
        .filter(|&i| in_degree[i] == 0)
        .map(std::cmp::Reverse)
        .collect();
    let mut order = Vec::with_capacity(n);
    while let Some(std::cmp::Reverse(step)) = ready.pop() {
        order.push(step);
        for next in graph.neighbors_directed(NodeIndex::new(step), Direction::Outgoing) {
            let j = next.index();
            levels[j] = levels[j].max(levels[step] + 1);
            in_degree[j] -= 1;
            if in_degree[j] == 0 {
                ready.push(std::cmp::Reverse(j));
            }
        }
    }
    (order, levels)
}

/// Every cycle as a path through `needs`, found per strongly connected component.
/// Kosaraju rather than Tarjan: petgraph's `tarjan_scc` recurses once per node and
/// overflows the stack on long generated chains; `kosaraju_scc` is iterative.
fn find_cycles(graph: &DiGraph<StepLabel, Needs>, steps: &[Step]) -> Vec<GraphError> {
    let mut cycles = Vec::new();
    let mut components = petgraph::algo::kosaraju_scc(graph);
    for component in &mut components {
        component.sort_unstable();
    }
    components.sort_by_key(|component| component.first().map(|n| n.index()));
    for component in components.iter().filter(|c| c.len() > 1) {
        let mut in_component = HashMap::with_capacity(component.len());
        for node in component {
            in_component.insert(node.index(), ());
        }
        let start = component[0].index();
        // Breadth-first along "needs" (incoming edges) inside the component, back to
        // the start: the shortest cycle through the first step in YAML order.
        let mut came_from: HashMap<usize, usize> = HashMap::new();
        let mut queue = VecDeque::from([start]);
        let mut closing = None;
        'search: while let Some(current) = queue.pop_front() {
            let mut needs: Vec<usize> = graph
                .neighbors_directed(NodeIndex::new(current), Direction::Incoming)
                .map(NodeIndex::index)
                .filter(|p| in_component.contains_key(p))
                .collect();
            needs.sort_unstable();
            for need in needs {
                if need == start {
                    closing = Some(current);
                    break 'search;
                }
                if let std::collections::hash_map::Entry::Vacant(slot) = came_from.entry(need) {
                    slot.insert(current);
                    queue.push_back(need);
                }
            }
        }
        let Some(last) = closing else { continue };
        let mut reversed = vec![last];
        let mut current = last;
        while current != start {
            current = came_from[&current];
            reversed.push(current);
        }
        let mut path: Vec<usize> = reversed.into_iter().rev().collect();
        path.push(start);
        let ids: Vec<String> = path.iter().map(|&i| steps[i].id.clone()).collect();
        let need_indexes = path
            .windows(2)
            .map(|pair| {
                steps[pair[0]]
                    .needs
                    .iter()
                    .position(|need| *need == steps[pair[1]].id)
                    .unwrap_or(0)
            })
            .collect();
        cycles.push(GraphError::Cycle {
            path,
            ids,
            need_indexes,
        });
    }
    cycles
}

/// Locates graph problems: unknown and self `needs` at the entry, a cycle at the
/// `needs` entry of its first step that closes it.
pub fn graph_issues(source: &PlanSource, problems: Vec<GraphError>) -> Vec<Issue> {
    let mut issues: Vec<Issue> = problems
        .into_iter()
        .map(|problem| match &problem {
            GraphError::UnknownNeed {
                step,
                need_index,
                suggestion,
                ..
            } => {
                let mut issue = source
                    .issue(
                        format!("steps[{step}].needs[{need_index}]"),
                        problem.to_string(),
                    )
                    .with_label("unknown step");
                if let Some(suggestion) = suggestion {
                    issue = issue.with_help(format!("did you mean `{suggestion}`?"));
                }
                issue
            }
            GraphError::SelfDependency {
                step, need_index, ..
            } => source.issue(
                format!("steps[{step}].needs[{need_index}]"),
                problem.to_string(),
            ),
            GraphError::Cycle {
                path, need_indexes, ..
            } => {
                let field = match (path.first(), need_indexes.first()) {
                    (Some(step), Some(need)) => format!("steps[{step}].needs[{need}]"),
                    _ => "steps".into(),
                };
                source
                    .issue(field, problem.to_string())
                    .with_help("`a -> b` reads \"a needs b\"; remove one of these `needs` entries")
            }
        })
        .collect();
    sort_issues(&mut issues);
    issues
}

#[cfg(test)]
mod tests {
    use super::*;

    fn steps(spec: &[(&str, &[&str])]) -> Vec<Step> {
        spec.iter()
            .map(|(id, needs)| Step {
                id: (*id).to_owned(),
                needs: needs.iter().map(|n| (*n).to_owned()).collect(),
                ..Step::default()
            })
            .collect()
    }

    #[test]
    fn repeated_needs_make_one_edge() {
        let g = PlanGraph::build(&steps(&[
            ("a", &[]),
            ("b", &["a", "a"]),
            ("c", &["b", "a", "b"]),
        ]))
        .unwrap();
        assert_eq!(g.dependencies(1), vec![0]);
        assert_eq!(g.dependencies(2), vec![0, 1]);
        assert_eq!(g.dependents(0), vec![1, 2]);
        assert_eq!(g.waves(), vec![vec![0], vec![1], vec![2]]);
    }

    #[test]
    fn waves_dependencies_and_order() {
        let g = PlanGraph::build(&steps(&[
            ("a", &[]),
            ("b", &["a"]),
            ("c", &["a"]),
            ("d", &["b", "c"]),
            ("e", &[]),
        ]))
        .unwrap();
        assert_eq!(g.waves(), vec![vec![0, 4], vec![1, 2], vec![3]]);
        assert_eq!(g.dependencies(3), vec![1, 2]);
        assert_eq!(g.dependents(0), vec![1, 2]);
        assert_eq!(g.descendants(0), vec![1, 2, 3]);
        assert!(g.is_upstream(0, 3));
        assert!(!g.is_upstream(4, 3));
        assert!(!g.is_upstream(3, 0));
        assert_eq!(g.topological_order(), &[0, 1, 2, 3, 4]);
    }

    #[test]
    fn cycles_are_reported_with_their_whole_path() {
        let errors = PlanGraph::build(&steps(&[
            ("a", &["b"]),
            ("b", &["c"]),
            ("c", &["a"]),
            ("d", &["c"]),
        ]))
        .unwrap_err();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].to_string(), "dependency cycle: a -> b -> c -> a");
    }

    #[test]
    fn unknown_needs_get_a_suggestion_and_self_needs_are_refused() {
        let errors = PlanGraph::build(&steps(&[
            ("push-package", &[]),
            ("deploy", &["push-pakage", "deploy"]),
        ]))
        .unwrap_err();
        assert!(matches!(
            &errors[0],
            GraphError::UnknownNeed { suggestion: Some(s), need_index: 0, .. } if s == "push-package"
        ));
        assert!(matches!(
            errors[1],
            GraphError::SelfDependency { step: 1, .. }
        ));
    }

    #[test]
    fn long_chains_stay_cheap() {
        let ids: Vec<String> = (0..50_000).map(|i| format!("s{i}")).collect();
        let chain: Vec<Step> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| Step {
                id: id.clone(),
                needs: if i == 0 {
                    vec![]
                } else {
                    vec![ids[i - 1].clone()]
                },
                ..Step::default()
            })
            .collect();
        let g = PlanGraph::build(&chain).unwrap();
        assert_eq!(g.waves().len(), 50_000);
        for i in 1..50_000 {
            assert!(g.is_upstream(i - 1, i));
        }
    }

    #[test]
    fn drawings_use_plain_labels() {
        let g = PlanGraph::build(&steps(&[("stop-web", &[]), ("push", &["stop-web"])])).unwrap();
        let dot = g.to_dot();
        assert!(dot.contains("label = \"stop-web\""), "{dot}");
        assert!(dot.contains("0 -> 1"), "{dot}");
        assert_eq!(
            g.to_mermaid(),
            "flowchart LR\n    s0[\"stop-web\"]\n    s1[\"push\"]\n    s0 --> s1\n"
        );
    }

    #[test]
    fn handler_edges_are_dashed_and_gates_are_hexagons() {
        let g = PlanGraph::build(&steps(&[
            ("deploy", &[]),
            ("go", &["deploy"]),
            ("undo", &["go"]),
        ]))
        .unwrap();
        let drawing = Drawing {
            handlers: vec![false, false, true],
            gates: vec![false, true, false],
        };
        let dot = g.to_dot_with(&drawing);
        assert!(dot.contains("1 -> 2 [ style=dashed]"), "{dot}");
        assert!(dot.contains("0 -> 1 [ ]"), "{dot}");
        assert!(dot.contains("shape=hexagon"), "{dot}");
        assert_eq!(
            g.to_mermaid_with(&drawing),
            "flowchart LR\n    s0[\"deploy\"]\n    s1{{\"go\"}}\n    s2[\"undo\"]\n    s0 --> s1\n    s1 -.-> s2\n"
        );
    }
}
