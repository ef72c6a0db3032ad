//! Small builders for specs in unit tests.
use std::sync::Arc;

use crate::spec::{AtomKind, AtomSpec, DeciderDepth, FlowNode, FlowSpec, LinkSpec, Name, Node, Pattern};

pub fn atom(index: usize) -> Node {
    Node::Atom(index)
}

fn flow(pattern: Pattern, children: Vec<Node>, links: &[(usize, usize)]) -> Node {
    let name = match pattern {
        Pattern::Linear => "lf",
        Pattern::Unordered => "uf",
        Pattern::Graph => "gf",
    };
    Node::Flow(Box::new(FlowNode {
        name: name.to_owned(),
        pattern,
        retry: None,
        children,
        links: Arc::new(
            links
                .iter()
                .map(|&(from, to)| LinkSpec { from, to, manual: false, decider: None, depth: DeciderDepth::All })
                .collect(),
        ),
    }))
}

pub fn linear(children: Vec<Node>) -> Node {
    flow(Pattern::Linear, children, &[])
}

pub fn unordered(children: Vec<Node>) -> Node {
    flow(Pattern::Unordered, children, &[])
}

pub fn graph(children: Vec<Node>, links: &[(usize, usize)]) -> Node {
    flow(Pattern::Graph, children, links)
}

pub fn empty() -> Node {
    linear(Vec::new())
}

pub trait NodeExt {
    fn with_retry(self, retry: usize) -> Node;
    fn named(self, name: &str) -> Node;
    fn with_decider(self, from: usize, to: usize, decider: u32, depth: DeciderDepth) -> Node;
}

impl NodeExt for Node {
    fn with_retry(self, retry: usize) -> Node {
        match self {
            Node::Flow(mut flow) => {
                flow.retry = Some(retry);
                Node::Flow(flow)
            }
            Node::Atom(_) => panic!("only flows take retries"),
        }
    }

    fn named(self, name: &str) -> Node {
        match self {
            Node::Flow(mut flow) => {
                name.clone_into(&mut flow.name);
                Node::Flow(flow)
            }
            Node::Atom(_) => panic!("only flows are named here"),
        }
    }

    fn with_decider(self, from: usize, to: usize, decider: u32, depth: DeciderDepth) -> Node {
        match self {
            Node::Flow(mut flow) => {
                Arc::make_mut(&mut flow.links).push(LinkSpec { from, to, manual: true, decider: Some(decider), depth });
                Node::Flow(flow)
            }
            Node::Atom(_) => panic!("only flows have links"),
        }
    }
}

/// A spec of plain tasks named `names`; atoms used as flow retries become retries.
pub fn spec(names: &[&str], root: Node) -> FlowSpec {
    let atoms = names.iter().map(|name| AtomSpec::task(name, &[], &[])).collect();
    spec_with(atoms, root)
}

/// A spec of the given atoms; atoms used as flow retries become retries.
pub fn spec_with(mut atoms: Vec<AtomSpec>, root: Node) -> FlowSpec {
    let mut stack = vec![&root];
    while let Some(node) = stack.pop() {
        if let Node::Flow(flow) = node {
            if let Some(retry) = flow.retry {
                if let Some(atom) = atoms.get_mut(retry) {
                    atom.kind = AtomKind::Retry;
                }
            }
            stack.extend(flow.children.iter());
        }
    }
    FlowSpec { atoms, root }
}

/// A task with optional arguments too.
pub fn task_opt(name: &str, requires: &[&str], optional: &[&str], provides: &[&str]) -> AtomSpec {
    let mut atom = AtomSpec::task(name, requires, provides);
    atom.optional = optional.iter().map(|s| Name::new(s)).collect();
    atom
}
