//! The step graph as SVG: nodes coloured by status, `needs` edges solid, handler edges
//! dashed and purple. Laid out by `layout-rs` (a layered, crossing-reducing layout),
//! not by hand.

use std::collections::HashMap;

use layout::backends::svg::SVGWriter;
use layout::core::base::Orientation;
use layout::core::color::Color;
use layout::core::geometry::{Point, get_size_for_str, pad_shape_scalar};
use layout::core::style::{LineStyleKind, StyleAttr};
use layout::std_shapes::shapes::{Arrow, Element, LineEndKind, ShapeKind};
use layout::topo::layout::VisualGraph;

use super::{DagEdge, EdgeKind};
use crate::report::summary::StepRecord;

/// Above this many steps the crossing optimisation is skipped: its cost grows faster
/// than the graph, and a 1,000-step graph must still render in well under a second.
const OPTIMISE_UP_TO: usize = 200;

const FONT: usize = 13;

/// Fill colour of a node in status `status` (RGBA).
fn fill(status: &str) -> u32 {
    match status {
        "succeeded" => 0xc8e6_c9ff,
        "failed" => 0xffcd_d2ff,
        "unknown" => 0xfff5_9dff,
        "interrupted" => 0xffe0_b2ff,
        "skipped" | "not_run" => 0xeeee_eeff,
        _ => 0xbbde_fbff,
    }
}

/// The graph of `steps` with `edges`, as an inline `<svg>` element. Edges naming a step
/// that is not in the report are left out.
pub fn svg(steps: &[StepRecord], edges: &[DagEdge]) -> String {
    if steps.is_empty() {
        return String::new();
    }
    // Left to right, like the timeline: a wide fan-out grows down the page, where a
    // reader scrolls, rather than sideways.
    let mut graph = VisualGraph::new(Orientation::LeftToRight);
    let mut handles = HashMap::new();
    for step in steps {
        let look = StyleAttr::new(
            Color::new(0x4242_42ff),
            1,
            Some(Color::new(fill(&step.status))),
            4,
            FONT,
        );
        let size = pad_shape_scalar(get_size_for_str(&step.id, FONT), 12.0);
        let element = Element::create_with_properties(
            ShapeKind::new_box(&step.id),
            look,
            Orientation::LeftToRight,
            Point::new(size.x.max(40.0), size.y),
            format!(
                "class=\"node st-{}\" data-step=\"{}\"",
                super::attr(&step.status),
                super::attr(&step.id)
            ),
        );
        handles.insert(step.id.as_str(), graph.add_node(element));
    }
    for edge in edges {
        let (Some(&from), Some(&to)) = (
            handles.get(edge.from.as_str()),
            handles.get(edge.to.as_str()),
        ) else {
            continue;
        };
        let (style, colour, class) = match edge.kind {
            EdgeKind::Needs => (LineStyleKind::Normal, 0x6161_61ff, "edge-needs"),
            EdgeKind::Handler => (LineStyleKind::Dashed, 0x8e24_aaff, "edge-handler"),
        };
        let look = StyleAttr::new(Color::new(colour), 2, None, 0, FONT);
        let arrow = Arrow::with_properties(
            LineEndKind::None,
            LineEndKind::Arrow,
            style,
            "",
            &look,
            format!("class=\"{class}\""),
            &None,
            &None,
        );
        graph.add_edge(arrow, from, to);
    }
    let mut writer = SVGWriter::new();
    graph.do_it(false, steps.len() > OPTIMISE_UP_TO, false, &mut writer);
    let text = writer.finalize();
    // Inline in HTML: the XML declaration has no place there.
    match text.find("<svg") {
        Some(at) => text[at..].to_owned(),
        None => text,
    }
}
