//! Flame graphs, drawn on the server as positioned boxes (an icicle: callers above callees,
//! the widest child first), so a profile reads without a script; `app.js` adds click-to-zoom.
//! Every frame's name and file come from an SDK and stay text: maud escapes them, and they are
//! clipped before they reach the page.
//!
//! The graph is bounded whatever the profile holds: boxes narrower than
//! [`MIN_SHARE`] of the whole are folded into their parent (which then shows the time as its
//! own), depth stops at [`MAX_DEPTH`], and at most [`MAX_BOXES`] boxes are drawn.

use super::{clip, empty};
use maud::{Markup, html};
use std::collections::HashMap;
use std::fmt::Write as _;

/// Boxes narrower than this share of the root are not drawn (their time stays in the parent).
pub(super) const MIN_SHARE: f64 = 0.002;
/// Deepest level drawn; deeper frames count in the box at this level.
pub(super) const MAX_DEPTH: usize = 48;
/// Most boxes drawn in one graph.
pub(super) const MAX_BOXES: usize = 1_500;
/// Height of one level, in pixels (matches `.flame-frame` in app.css).
const ROW_PX: usize = 18;

/// How one frame is labelled: its function, where it lives, and whether it is the
/// application's own code (drawn warm) or a library's (drawn cool).
#[derive(Debug, Clone, Copy)]
pub(super) struct FrameLabel<'a> {
    /// Function name as the SDK sent it.
    pub name: &'a str,
    /// Module or file name, empty when unknown.
    pub file: &'a str,
    /// The application's own code.
    pub in_app: bool,
}

/// A call tree merged from weighted stacks.
#[derive(Debug, Default)]
struct Node {
    frame: u32,
    total: u64,
    children: Vec<Node>,
    /// Child index by frame, while building.
    index: HashMap<u32, usize>,
}

impl Node {
    fn child(&mut self, frame: u32) -> &mut Node {
        let next = self.children.len();
        let i = *self.index.entry(frame).or_insert(next);
        if i == next {
            self.children.push(Node {
                frame,
                ..Node::default()
            });
        }
        &mut self.children[i]
    }

    fn sort(&mut self) {
        self.index = HashMap::new();
        self.children
            .sort_by(|a, b| b.total.cmp(&a.total).then(a.frame.cmp(&b.frame)));
        for c in &mut self.children {
            c.sort();
        }
    }
}

/// Merges stacks (frame indices, root first) with their weights into one tree. Frames at or
/// past `frames_len` are skipped (the store validated them; this keeps a page from panicking
/// if it did not).
fn tree<'s>(stacks: impl IntoIterator<Item = (&'s [u32], u64)>, frames_len: usize) -> Node {
    let mut root = Node::default();
    for (stack, weight) in stacks {
        if weight == 0 {
            continue;
        }
        root.total += weight;
        let mut at = &mut root;
        for &f in stack
            .iter()
            .filter(|f| (**f as usize) < frames_len)
            .take(MAX_DEPTH)
        {
            at = at.child(f);
            at.total += weight;
        }
    }
    root.sort();
    root
}

/// A weight in nanoseconds as a short duration.
pub(super) fn dur(ns: u64) -> String {
    let ms = ns as f64 / 1e6;
    if ms >= 1000.0 {
        format!("{:.2} s", ms / 1000.0)
    } else if ms >= 10.0 {
        format!("{ms:.0} ms")
    } else {
        format!("{ms:.1} ms")
    }
}

/// One drawn box.
struct Box_ {
    depth: usize,
    /// Left edge and width as shares of the root (0–1).
    x: f64,
    w: f64,
    frame: u32,
    total: u64,
    self_w: u64,
}

fn layout(root: &Node) -> Vec<Box_> {
    let mut out = Vec::new();
    if root.total == 0 {
        return out;
    }
    let whole = root.total as f64;
    // Breadth-first, so a cap on boxes keeps the top of the graph.
    let mut level: Vec<(&Node, f64)> = vec![(root, 0.0)];
    let mut depth = 0;
    while !level.is_empty() && out.len() < MAX_BOXES {
        let mut next = Vec::new();
        for (node, x) in level {
            let mut cx = x;
            for c in &node.children {
                let w = c.total as f64 / whole;
                if w >= MIN_SHARE && out.len() < MAX_BOXES {
                    let kids: u64 = c.children.iter().map(|k| k.total).sum();
                    out.push(Box_ {
                        depth,
                        x: cx,
                        w,
                        frame: c.frame,
                        total: c.total,
                        self_w: c.total.saturating_sub(kids),
                    });
                    next.push((c, cx));
                }
                cx += w;
            }
        }
        level = next;
        depth += 1;
    }
    out
}

/// A stable hue for a name, so one function keeps its colour across graphs.
fn hue(name: &str, in_app: bool) -> u32 {
    let h = name.bytes().fold(2_166_136_261u32, |h, b| {
        (h ^ b as u32).wrapping_mul(16_777_619)
    });
    // Warm (0–50°) for the application's code, cool (180–250°) for libraries.
    if in_app { h % 50 } else { 180 + h % 70 }
}

/// A flame graph of `stacks` (frame indices into `frames`, root first, with weights in
/// nanoseconds), under the id `id`, described to assistive technology as `label`.
/// `empty_text` is shown when there is no sample.
pub(super) fn flame_graph<'s>(
    id: &str,
    label: &str,
    frames: &[FrameLabel<'_>],
    stacks: impl IntoIterator<Item = (&'s [u32], u64)>,
    empty_text: &str,
) -> Markup {
    let root = tree(stacks, frames.len());
    let boxes = layout(&root);
    if boxes.is_empty() {
        return empty(empty_text);
    }
    let depth = boxes.iter().map(|b| b.depth).max().unwrap_or(0) + 1;
    let whole = root.total as f64;
    // The widest leaf-ward path, for the summary read out instead of the boxes.
    let hottest = boxes
        .iter()
        .filter(|b| b.self_w > 0)
        .max_by_key(|b| b.self_w)
        .and_then(|b| frames.get(b.frame as usize))
        .map(|f| clip(f.name, 80));
    let mut summary = format!("{label}: {} sampled", dur(root.total));
    if let Some(h) = &hottest {
        let _ = write!(summary, "; most self time in {h}");
    }
    html! {
        div.flame id=(id) role="group" aria-label=(summary) data-flame="1" {
            div.flame-bar {
                span.muted { (dur(root.total)) " sampled · click a frame to zoom" }
                button.flame-reset type="button" hidden { "Reset zoom" }
            }
            div.flame-canvas style=(format!("height:{}px", depth * ROW_PX)) {
                @for b in &boxes {
                    @let f = frames.get(b.frame as usize).copied().unwrap_or(FrameLabel { name: "?", file: "", in_app: false });
                    @let name = clip(f.name, 200);
                    @let tip = format!(
                        "{name}{}{}\ntotal {} ({:.1}%) · self {}",
                        if f.file.is_empty() { "" } else { " — " },
                        clip(f.file, 200),
                        dur(b.total),
                        b.total as f64 / whole * 100.0,
                        dur(b.self_w),
                    );
                    div class=(if f.in_app { "flame-frame app" } else { "flame-frame" })
                        style=(format!("left:{:.4}%;width:{:.4}%;top:{}px;background:hsl({},70%,{}%)", b.x * 100.0, b.w * 100.0, b.depth * ROW_PX, hue(f.name, f.in_app), if f.in_app { 72 } else { 80 }))
                        data-x=(format!("{:.6}", b.x)) data-w=(format!("{:.6}", b.w)) data-depth=(b.depth)
                        title=(tip) {
                        span { (name) }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(names: &[&'static str]) -> Vec<FrameLabel<'static>> {
        names
            .iter()
            .map(|n| FrameLabel {
                name: n,
                file: "",
                in_app: true,
            })
            .collect()
    }

    #[test]
    fn stacks_merge_into_one_tree_widest_first() {
        let stacks: Vec<(Vec<u32>, u64)> = vec![
            (vec![0, 1], 10),
            (vec![0, 2], 30),
            (vec![0, 1], 5),
            (vec![0], 5),
        ];
        let root = tree(stacks.iter().map(|(s, w)| (s.as_slice(), *w)), 3);
        assert_eq!(root.total, 50);
        let main = &root.children[0];
        assert_eq!((main.frame, main.total), (0, 50));
        let kids: Vec<(u32, u64)> = main.children.iter().map(|c| (c.frame, c.total)).collect();
        assert_eq!(kids, vec![(2, 30), (1, 15)]);
        let boxes = layout(&root);
        let main_box = boxes.iter().find(|b| b.frame == 0).expect("main drawn");
        assert_eq!(main_box.self_w, 5);
        let one = boxes.iter().find(|b| b.frame == 1).expect("drawn");
        assert!((one.x - 0.6).abs() < 1e-9, "{}", one.x);
    }

    #[test]
    fn narrow_and_out_of_range_frames_are_not_drawn() {
        let stacks: Vec<(Vec<u32>, u64)> =
            vec![(vec![0, 1], 10_000), (vec![0, 2], 1), (vec![0, 9], 7)];
        let root = tree(stacks.iter().map(|(s, w)| (s.as_slice(), *w)), 3);
        let boxes = layout(&root);
        assert!(boxes.iter().all(|b| b.frame != 2), "a 0.01 % box is folded");
        assert!(
            boxes.iter().all(|b| b.frame != 9),
            "an unknown frame is skipped"
        );
    }

    #[test]
    fn names_are_escaped() {
        let frames = labels(&["<script>alert(1)</script>"]);
        let stacks: Vec<(Vec<u32>, u64)> = vec![(vec![0], 1_000_000)];
        let html = flame_graph(
            "f",
            "Profile",
            &frames,
            stacks.iter().map(|(s, w)| (s.as_slice(), *w)),
            "none",
        )
        .into_string();
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("&lt;script&gt;"), "{html}");
    }

    #[test]
    fn no_sample_shows_the_empty_text() {
        let html =
            flame_graph("f", "Profile", &[], std::iter::empty(), "Nothing sampled.").into_string();
        assert!(html.contains("Nothing sampled."));
    }
}
