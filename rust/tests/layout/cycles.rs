//! Cycles in a directed graph of names: one cycle per strongly connected
//! component, described with where each step is written.

use std::collections::{BTreeMap, BTreeSet};

/// From each node, the nodes it names, each with where it is first named.
pub type Edges = BTreeMap<String, BTreeMap<String, String>>;

/// The rest of a cycle's strongly connected group, if it has more.
pub fn others(cycle: &[String], group: &[String]) -> String {
    if group.len() == cycle.len() {
        return String::new();
    }
    format!(
        " (one of the cycles among these {}: {})",
        group.len(),
        group.join(", ")
    )
}

/// `a -> b -> a`, each step with where it is written.
pub fn describe(cycle: &[String], edges: &Edges, prefix: &str) -> String {
    let mut s = format!("{prefix}{}", cycle[0]);
    for w in 0..cycle.len() {
        let (a, b) = (&cycle[w], &cycle[(w + 1) % cycle.len()]);
        s.push_str(&format!(" -> {prefix}{b} [at {}]", edges[a][b]));
    }
    s
}

/// One cycle for each strongly connected component with more than one
/// node (Tarjan's algorithm, then a shortest way round from its first
/// node), with all the component's nodes.
pub fn cycles(edges: &Edges) -> Vec<(Vec<String>, Vec<String>)> {
    struct Tarjan<'a> {
        edges: &'a Edges,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        sccs: Vec<Vec<&'a str>>,
    }
    impl<'a> Tarjan<'a> {
        fn visit(&mut self, v: &'a str) {
            let n = self.index.len();
            self.index.insert(v, n);
            self.low.insert(v, n);
            self.stack.push(v);
            self.on_stack.insert(v);
            let next: Vec<&'a str> = self
                .edges
                .get(v)
                .map(|m| m.keys().map(String::as_str).collect())
                .unwrap_or_default();
            for w in next {
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let l = self.low[w].min(self.low[v]);
                    self.low.insert(v, l);
                } else if self.on_stack.contains(w) {
                    let l = self.index[w].min(self.low[v]);
                    self.low.insert(v, l);
                }
            }
            if self.low[v] == self.index[v] {
                let mut scc = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on_stack.remove(w);
                    scc.push(w);
                    if w == v {
                        break;
                    }
                }
                self.sccs.push(scc);
            }
        }
    }
    let mut t = Tarjan {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        sccs: Vec::new(),
    };
    for v in edges.keys() {
        if !t.index.contains_key(v.as_str()) {
            t.visit(v);
        }
    }
    let mut out = Vec::new();
    for scc in t.sccs.into_iter().filter(|s| s.len() > 1) {
        let members: BTreeSet<&str> = scc.iter().copied().collect();
        let start = *members.iter().next().unwrap();
        // Breadth-first from `start` back to it, inside the component.
        let mut came_from: BTreeMap<&str, &str> = BTreeMap::new();
        let mut queue = std::collections::VecDeque::from([start]);
        'search: while let Some(v) = queue.pop_front() {
            for w in edges[v].keys().map(String::as_str) {
                if !members.contains(w) {
                    continue;
                }
                if w == start {
                    came_from.insert(start, v);
                    break 'search;
                }
                if !came_from.contains_key(w) {
                    came_from.insert(w, v);
                    queue.push_back(w);
                }
            }
        }
        let mut path = vec![start.to_string()];
        let mut v = came_from[start];
        while v != start {
            path.push(v.to_string());
            v = came_from[v];
        }
        path[1..].reverse();
        out.push((path, members.iter().map(|m| m.to_string()).collect()));
    }
    out
}
