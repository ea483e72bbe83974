//! Just enough of the ONNX format (protocol buffers) to read an inference graph: its nodes,
//! their attributes and its float initializers. Written for the one model we ship; anything it
//! does not understand is an error, never a guess.

use std::collections::HashMap;

use crate::VisionError;

/// A graph in file order (ONNX requires topological order).
#[derive(Debug, Default)]
pub struct Graph {
    pub nodes: Vec<Node>,
    pub weights: HashMap<String, Weight>,
    /// Graph inputs that are not initializers: what the caller feeds.
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
}

#[derive(Debug, Default, Clone)]
pub struct Node {
    pub op: String,
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    pub attrs: HashMap<String, Attr>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Attr {
    Int(i64),
    Ints(Vec<i64>),
    Float(f32),
    /// A kind this reader does not interpret (strings, tensors, graphs).
    Other,
}

/// A float tensor of the model, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Weight {
    pub dims: Vec<usize>,
    pub data: Vec<f32>,
}

impl Node {
    pub fn ints(&self, name: &str) -> Option<&[i64]> {
        match self.attrs.get(name) {
            Some(Attr::Ints(v)) => Some(v),
            _ => None,
        }
    }

    pub fn int(&self, name: &str) -> Option<i64> {
        match self.attrs.get(name) {
            Some(Attr::Int(v)) => Some(*v),
            _ => None,
        }
    }

    pub fn float(&self, name: &str) -> Option<f32> {
        match self.attrs.get(name) {
            Some(Attr::Float(v)) => Some(*v),
            _ => None,
        }
    }
}

fn bad(what: impl Into<String>) -> VisionError {
    VisionError::Model(what.into())
}

/// One field of a message: its number and its value.
enum Value<'a> {
    Varint(u64),
    Fixed32(u32),
    Fixed64,
    Bytes(&'a [u8]),
}

/// The fields of one protobuf message, in order.
struct Fields<'a> {
    buf: &'a [u8],
}

fn varint(buf: &mut &[u8]) -> Result<u64, VisionError> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = buf.split_first().ok_or_else(|| bad("truncated varint"))?;
        *buf = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(bad("varint longer than 10 bytes"))
}

fn take<'a>(buf: &mut &'a [u8], n: usize) -> Result<&'a [u8], VisionError> {
    if buf.len() < n {
        return Err(bad("truncated field"));
    }
    let (head, rest) = buf.split_at(n);
    *buf = rest;
    Ok(head)
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<(u64, Value<'a>), VisionError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.buf.is_empty() {
            return None;
        }
        let mut field = || -> Result<(u64, Value<'a>), VisionError> {
            let key = varint(&mut self.buf)?;
            let value = match key & 7 {
                0 => Value::Varint(varint(&mut self.buf)?),
                1 => {
                    take(&mut self.buf, 8)?;
                    Value::Fixed64
                }
                2 => {
                    let n = usize::try_from(varint(&mut self.buf)?).map_err(|_| bad("field too long"))?;
                    Value::Bytes(take(&mut self.buf, n)?)
                }
                5 => Value::Fixed32(u32::from_le_bytes(take(&mut self.buf, 4)?.try_into().expect("4 bytes"))),
                w => return Err(bad(format!("unsupported wire type {w}"))),
            };
            Ok((key >> 3, value))
        };
        let item = field();
        if item.is_err() {
            self.buf = &[]; // stop after an error
        }
        Some(item)
    }
}

fn fields(buf: &[u8]) -> Fields<'_> {
    Fields { buf }
}

fn string(v: Value<'_>) -> Result<String, VisionError> {
    match v {
        Value::Bytes(b) => String::from_utf8(b.to_vec()).map_err(|_| bad("a name is not UTF-8")),
        _ => Err(bad("expected a string")),
    }
}

/// A repeated integer field, packed or not.
fn push_ints(v: Value<'_>, out: &mut Vec<i64>) -> Result<(), VisionError> {
    match v {
        Value::Varint(x) => out.push(x as i64),
        Value::Bytes(mut b) => {
            while !b.is_empty() {
                out.push(varint(&mut b)? as i64);
            }
        }
        _ => return Err(bad("expected integers")),
    }
    Ok(())
}

/// Parses a serialized `ModelProto`.
pub fn parse(model: &[u8]) -> Result<Graph, VisionError> {
    let mut graph = None;
    for f in fields(model) {
        if let (7, Value::Bytes(b)) = f? {
            graph = Some(parse_graph(b)?);
        }
    }
    graph.ok_or_else(|| bad("the file holds no graph"))
}

fn parse_graph(buf: &[u8]) -> Result<Graph, VisionError> {
    let mut g = Graph::default();
    let (mut declared_inputs, mut initializers) = (Vec::new(), std::collections::HashSet::new());
    for f in fields(buf) {
        match f? {
            (1, Value::Bytes(b)) => g.nodes.push(parse_node(b)?),
            (5, Value::Bytes(b)) => {
                let (name, weight) = parse_tensor(b)?;
                if let Some(w) = weight {
                    g.weights.insert(name.clone(), w);
                }
                initializers.insert(name);
            }
            (11, Value::Bytes(b)) => declared_inputs.push(value_info_name(b)?),
            (12, Value::Bytes(b)) => g.outputs.push(value_info_name(b)?),
            _ => {}
        }
    }
    // Older exporters list every initializer among the inputs too.
    g.inputs = declared_inputs.into_iter().filter(|n| !initializers.contains(n)).collect();
    Ok(g)
}

fn value_info_name(buf: &[u8]) -> Result<String, VisionError> {
    for f in fields(buf) {
        if let (1, v) = f? {
            return string(v);
        }
    }
    Err(bad("an input or output has no name"))
}

fn parse_node(buf: &[u8]) -> Result<Node, VisionError> {
    let mut n = Node::default();
    for f in fields(buf) {
        match f? {
            (1, v) => n.inputs.push(string(v)?),
            (2, v) => n.outputs.push(string(v)?),
            (4, v) => n.op = string(v)?,
            (5, Value::Bytes(b)) => {
                let (name, attr) = parse_attr(b)?;
                n.attrs.insert(name, attr);
            }
            (7, v) => {
                let domain = string(v)?;
                if !domain.is_empty() && domain != "ai.onnx" {
                    return Err(bad(format!("operator domain {domain} is not supported")));
                }
            }
            _ => {}
        }
    }
    Ok(n)
}

fn parse_attr(buf: &[u8]) -> Result<(String, Attr), VisionError> {
    let (mut name, mut int, mut float, mut ints, mut kind) = (String::new(), None, None, Vec::new(), 0u64);
    for f in fields(buf) {
        match f? {
            (1, v) => name = string(v)?,
            (2, Value::Fixed32(x)) => float = Some(f32::from_bits(x)),
            (3, Value::Varint(x)) => int = Some(x as i64),
            (8, v) => push_ints(v, &mut ints)?,
            (20, Value::Varint(x)) => kind = x,
            _ => {}
        }
    }
    // AttributeProto.type: 1 FLOAT, 2 INT, 7 INTS.
    let attr = match kind {
        1 => Attr::Float(float.unwrap_or(0.0)),
        2 => Attr::Int(int.unwrap_or(0)),
        7 => Attr::Ints(ints),
        _ => Attr::Other,
    };
    Ok((name, attr))
}

/// An initializer's name and, for floats, its values (other element types, such as the
/// integer counters some exporters leave in, are never read by inference).
fn parse_tensor(buf: &[u8]) -> Result<(String, Option<Weight>), VisionError> {
    let (mut name, mut dims, mut dtype, mut raw, mut floats) = (String::new(), Vec::new(), 0u64, None, Vec::new());
    for f in fields(buf) {
        match f? {
            (1, v) => push_ints(v, &mut dims)?,
            (2, Value::Varint(x)) => dtype = x,
            (4, Value::Fixed32(x)) => floats.push(f32::from_bits(x)),
            (4, Value::Bytes(b)) => {
                floats.extend(b.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes"))));
            }
            (8, v) => name = string(v)?,
            (9, Value::Bytes(b)) => raw = Some(b),
            _ => {}
        }
    }
    const FLOAT: u64 = 1;
    if dtype != FLOAT {
        return Ok((name, None));
    }
    let dims: Vec<usize> =
        dims.into_iter().map(|d| usize::try_from(d).map_err(|_| bad("a negative dimension"))).collect::<Result<_, _>>()?;
    let data = match raw {
        Some(b) => b.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes"))).collect(),
        None => floats,
    };
    if data.len() != dims.iter().product::<usize>() {
        return Err(bad(format!("initializer {name} holds {} values for dimensions {dims:?}", data.len())));
    }
    Ok((name, Some(Weight { dims, data })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(field: u64, wire: u64) -> u8 {
        ((field << 3) | wire) as u8
    }

    fn bytes(field: u64, body: &[u8]) -> Vec<u8> {
        let mut out = vec![key(field, 2), body.len() as u8];
        out.extend_from_slice(body);
        out
    }

    #[test]
    fn a_small_graph_reads_back() {
        // A Relu node reading "x" and a 2-value float initializer "w" stored as raw data.
        let mut node = bytes(1, b"x");
        node.extend(bytes(2, b"y"));
        node.extend(bytes(4, b"Relu"));
        let mut attr = bytes(1, b"axes");
        attr.extend(bytes(8, &[1, 2, 3])); // packed ints
        attr.extend([0xa0, 0x01, 7]); // field 20 (type) = INTS
        node.extend(bytes(5, &attr));
        let mut tensor = bytes(1, &[2]);
        tensor.extend([key(2, 0), 1]);
        tensor.extend(bytes(8, b"w"));
        let raw: Vec<u8> = [1.5f32, -2.0].iter().flat_map(|f| f.to_le_bytes()).collect();
        tensor.extend(bytes(9, &raw));
        let mut graph = bytes(1, &node);
        graph.extend(bytes(5, &tensor));
        graph.extend(bytes(11, &bytes(1, b"x")));
        graph.extend(bytes(11, &bytes(1, b"w")));
        graph.extend(bytes(12, &bytes(1, b"y")));
        let model = bytes(7, &graph);

        let g = parse(&model).unwrap();
        assert_eq!(g.inputs, ["x"]);
        assert_eq!(g.outputs, ["y"]);
        assert_eq!(g.nodes[0].op, "Relu");
        assert_eq!(g.nodes[0].ints("axes"), Some(&[1, 2, 3][..]));
        assert_eq!(g.weights["w"], Weight { dims: vec![2], data: vec![1.5, -2.0] });
    }

    #[test]
    fn truncated_or_inconsistent_files_are_errors() {
        assert!(parse(&[key(7, 2), 10, 1]).is_err());
        assert!(parse(&[]).is_err());
        let mut tensor = bytes(1, &[3]);
        tensor.extend([key(2, 0), 1]);
        tensor.extend(bytes(9, &[0; 8]));
        assert!(parse(&bytes(7, &bytes(5, &tensor))).is_err());
    }
}
