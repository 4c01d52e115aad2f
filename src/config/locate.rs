//! Where each key path sits in the YAML text. serde_yaml reports a location only for the
//! first error it meets, but the compiler finds many (bad CIDR here, unknown provider there)
//! after parsing, so this walks the document's events once with yaml-rust2 and records the
//! line and column of every key and value by its path.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// Line/column (1-based) of keys and values by key path.
#[derive(Debug, Default)]
pub struct Locator {
    keys: HashMap<String, (usize, usize)>,
    values: HashMap<String, (usize, usize)>,
}

enum Frame {
    Map { path: String, key: Option<String> },
    Seq { path: String, next: usize },
}

struct Walker {
    stack: Vec<Frame>,
    out: Locator,
}

impl Walker {
    /// The path of the node that starts now, if it is a value (None for a mapping key).
    fn value_path(&mut self) -> Option<String> {
        match self.stack.last_mut() {
            None => Some(String::new()),
            Some(Frame::Seq { path, next }) => {
                let p = format!("{path}[{next}]");
                *next += 1;
                Some(p)
            }
            Some(Frame::Map { path, key }) => key.take().map(|k| join(path, &k)),
        }
    }
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

impl MarkedEventReceiver for Walker {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        let pos = (mark.line(), mark.col() + 1);
        match ev {
            Event::Scalar(text, ..) => {
                if let Some(Frame::Map {
                    path,
                    key: key @ None,
                }) = self.stack.last_mut()
                {
                    self.out.keys.insert(join(path, &text), pos);
                    *key = Some(text);
                } else if let Some(p) = self.value_path() {
                    self.out.values.insert(p, pos);
                }
            }
            Event::Alias(_) => {
                if let Some(p) = self.value_path() {
                    self.out.values.insert(p, pos);
                }
            }
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                // A complex mapping key has no path of its own; treat it as an anonymous value.
                let path = self.value_path().unwrap_or_default();
                self.out.values.insert(path.clone(), pos);
                if matches!(ev, Event::MappingStart(..)) {
                    self.stack.push(Frame::Map { path, key: None });
                } else {
                    self.stack.push(Frame::Seq { path, next: 0 });
                }
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            _ => {}
        }
    }
}

impl Locator {
    /// Indexes `text`; a document yaml-rust2 cannot parse gives an empty index (serde_yaml
    /// reports the syntax error itself).
    pub fn new(text: &str) -> Self {
        let mut w = Walker {
            stack: Vec::new(),
            out: Locator::default(),
        };
        let mut parser = Parser::new_from_str(text);
        if parser.load(&mut w, false).is_err() {
            return Locator::default();
        }
        w.out
    }

    /// Position of the value at `path`, else of its key, else of the nearest ancestor.
    pub fn value(&self, path: &str) -> (usize, usize) {
        let mut p = path;
        loop {
            if let Some(pos) = self.values.get(p).or_else(|| self.keys.get(p)) {
                return *pos;
            }
            match p.rfind(['.', '[']) {
                Some(i) => p = &p[..i],
                None => return self.values.get("").copied().unwrap_or((0, 0)),
            }
        }
    }

    /// Position of the key at `path` (for unknown keys), else as [`Locator::value`].
    pub fn key(&self, path: &str) -> (usize, usize) {
        self.keys
            .get(path)
            .copied()
            .unwrap_or_else(|| self.value(path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_nested_positions() {
        let text = "a:\n  b: 1\nlist:\n  - x: 2\n  - y: [3, 4]\n";
        let l = Locator::new(text);
        assert_eq!(l.value("a.b"), (2, 6));
        assert_eq!(l.key("a.b"), (2, 3));
        assert_eq!(l.value("list[1].y[1]"), (5, 12));
        assert_eq!(
            l.value("list[1].nope").0,
            5,
            "falls back to the enclosing mapping"
        );
    }
}
