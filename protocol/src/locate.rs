//! Finding where a field path (`roles.codegen.limits.pids`, `acceptance[1].test.name`) is in a
//! YAML text, so errors found after parsing (by validation) still point at a line and column.
//!
//! Uses the event parser serde-saphyr is built on; anything it cannot follow (aliases, a path
//! that does not exist) degrades to the nearest enclosing node it did find, or to nothing.

use serde_saphyr::granit_parser::{Event, Parser, Span};

use crate::load::Position;

#[derive(Debug, PartialEq)]
enum Segment {
    Key(String),
    Index(usize),
}

fn segments(field: &str) -> Vec<Segment> {
    let mut out = Vec::new();
    for part in field.split('.').filter(|p| !p.is_empty()) {
        let (key, mut rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !key.is_empty() {
            out.push(Segment::Key(key.to_owned()));
        }
        while let Some(stripped) = rest.strip_prefix('[') {
            let Some(end) = stripped.find(']') else { break };
            if let Ok(i) = stripped[..end].parse() {
                out.push(Segment::Index(i));
            }
            rest = &stripped[end + 1..];
        }
    }
    out
}

fn position(span: &Span) -> Position {
    Position {
        line: span.start.line() as u64,
        column: span.start.col() as u64 + 1,
    }
}

struct Events<'a> {
    parser: Parser<'a, serde_saphyr::granit_parser::StrInput<'a>>,
}

impl<'a> Events<'a> {
    /// The next data event (comments and anchor metadata skipped); `None` at the end or on a
    /// syntax error.
    fn next(&mut self) -> Option<(Event<'a>, Span)> {
        loop {
            let (ev, span) = self.parser.next_event()?.ok()?;
            match ev {
                Event::Anchor(..) => continue,
                #[allow(unreachable_patterns)]
                Event::Comment(..) => continue,
                other => return Some((other, span)),
            }
        }
    }

    /// Skips the rest of a node whose start event was already read.
    fn skip(&mut self, start: &Event<'a>) -> Option<()> {
        let mut depth = match start {
            Event::MappingStart(..) | Event::SequenceStart(..) => 1usize,
            _ => return Some(()),
        };
        while depth > 0 {
            match self.next()?.0 {
                Event::MappingStart(..) | Event::SequenceStart(..) => depth += 1,
                Event::MappingEnd | Event::SequenceEnd => depth -= 1,
                _ => {}
            }
        }
        Some(())
    }
}

/// The position of `field` in `text`: the key of the last mapping segment, or the item of the
/// last sequence segment; the deepest enclosing node found when the path does not exist.
pub(crate) fn locate(text: &str, field: &str) -> Option<Position> {
    let mut ev = Events {
        parser: Parser::new_from_str(text),
    };
    // Root node: skip stream and document starts.
    let (mut node, mut node_span) = loop {
        let (e, s) = ev.next()?;
        if !matches!(e, Event::StreamStart | Event::DocumentStart(..)) {
            break (e, s);
        }
    };
    let mut best = None;
    for seg in segments(field) {
        match (seg, &node) {
            (Segment::Key(want), Event::MappingStart(..)) => {
                let found = loop {
                    let (k, kspan) = ev.next()?;
                    match k {
                        Event::MappingEnd => break None,
                        Event::Scalar(ref s, ..) if s.as_ref() == want => {
                            break Some(kspan);
                        }
                        other => {
                            ev.skip(&other)?;
                            let (v, _) = ev.next()?;
                            ev.skip(&v)?;
                        }
                    }
                };
                let Some(kspan) = found else { return best };
                best = Some(position(&kspan));
                let (v, vspan) = ev.next()?;
                node = v;
                node_span = vspan;
            }
            (Segment::Index(want), Event::SequenceStart(..)) => {
                let mut i = 0;
                let found = loop {
                    let (item, ispan) = ev.next()?;
                    if matches!(item, Event::SequenceEnd) {
                        break None;
                    }
                    if i == want {
                        break Some((item, ispan));
                    }
                    ev.skip(&item)?;
                    i += 1;
                };
                let Some((item, ispan)) = found else {
                    return best;
                };
                best = Some(position(&ispan));
                node = item;
                node_span = ispan;
            }
            _ => return best.or(Some(position(&node_span))),
        }
    }
    best
}

/// The parser's message without the location (we print that ourselves as `file:line:col`).
pub(crate) fn plain_message(err: &serde_saphyr::Error) -> String {
    let msg = err.to_string();
    match msg.rfind(" at line ") {
        Some(i) if msg[i..].contains(", column ") => msg[..i].to_owned(),
        _ => msg,
    }
}

/// Replaces the `?` segments serde's path tracking leaves for map keys it could not print
/// (keys that deserialize into an enum, such as role names) with the keys found in `text` on
/// the way to `at`. `roles.?.limts` at the line of `limts:` under `codegen:` becomes
/// `roles.codegen.limts`. Anything that does not line up is left as it was.
pub(crate) fn fill_unknown_keys(text: &str, field: &str, at: Position) -> String {
    if !field.split('.').any(|p| p == "?" || p.starts_with("?[")) {
        return field.to_owned();
    }
    let Some(path) = keys_to(text, at) else {
        return field.to_owned();
    };
    let mut keys = path.iter().filter_map(|s| match s {
        Segment::Key(k) => Some(k.as_str()),
        Segment::Index(_) => None,
    });
    field
        .split('.')
        .map(|part| {
            let (key, rest) = part
                .find('[')
                .map_or((part, ""), |i| (&part[..i], &part[i..]));
            let found = keys.next();
            match (key, found) {
                ("?", Some(k)) => format!("{k}{rest}"),
                _ => part.to_owned(),
            }
        })
        .collect::<Vec<_>>()
        .join(".")
}

/// The chain of keys and indices leading to the last mapping key that starts at or before `at`.
fn keys_to(text: &str, at: Position) -> Option<Vec<Segment>> {
    enum Frame {
        Map { key: Option<String>, want_key: bool },
        Seq { index: usize },
    }
    fn path_of(stack: &[Frame]) -> Vec<Segment> {
        stack
            .iter()
            .filter_map(|f| match f {
                Frame::Map { key: Some(k), .. } => Some(Segment::Key(k.clone())),
                Frame::Map { key: None, .. } => None,
                Frame::Seq { index } => Some(Segment::Index(*index)),
            })
            .collect()
    }
    // A value just ended in the innermost container: advance it.
    fn value_done(stack: &mut [Frame]) {
        match stack.last_mut() {
            Some(Frame::Map { want_key, .. }) => *want_key = true,
            Some(Frame::Seq { index }) => *index += 1,
            None => {}
        }
    }
    let mut ev = Events {
        parser: Parser::new_from_str(text),
    };
    let mut stack: Vec<Frame> = Vec::new();
    let mut best = None;
    while let Some((e, span)) = ev.next() {
        let p = position(&span);
        if (p.line, p.column) > (at.line, at.column) {
            break;
        }
        match e {
            Event::MappingStart(..) => stack.push(Frame::Map {
                key: None,
                want_key: true,
            }),
            Event::SequenceStart(..) => stack.push(Frame::Seq { index: 0 }),
            Event::MappingEnd | Event::SequenceEnd => {
                stack.pop();
                value_done(&mut stack);
            }
            Event::Scalar(ref s, ..) => {
                if let Some(Frame::Map { key, want_key }) = stack.last_mut() {
                    if *want_key {
                        *key = Some(s.to_string());
                        *want_key = false;
                        best = Some(path_of(&stack));
                        continue;
                    }
                }
                value_done(&mut stack);
            }
            _ => {}
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "a: 1\nroles:\n  codegen:\n    limits: { pids: 3 }\n    read: [x, y]\nlist:\n  - id: one\n  - id: two\n    test: {name: n}\n";

    #[test]
    fn finds_nested_keys_and_items() {
        assert_eq!(
            locate(DOC, "roles.codegen.limits.pids"),
            Some(Position {
                line: 4,
                column: 15
            })
        );
        assert_eq!(
            locate(DOC, "roles.codegen.read[1]"),
            Some(Position {
                line: 5,
                column: 15
            })
        );
        assert_eq!(
            locate(DOC, "list[1].test.name"),
            Some(Position {
                line: 9,
                column: 12
            })
        );
    }

    #[test]
    fn missing_leaf_falls_back_to_parent() {
        assert_eq!(
            locate(DOC, "roles.codegen.nope"),
            Some(Position { line: 3, column: 3 })
        );
    }

    #[test]
    fn splits_segments() {
        assert_eq!(
            segments("a[1][2].b"),
            vec![
                Segment::Key("a".into()),
                Segment::Index(1),
                Segment::Index(2),
                Segment::Key("b".into())
            ]
        );
    }
}
