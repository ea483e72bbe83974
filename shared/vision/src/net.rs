//! A small interpreter for convolutional ONNX graphs: Conv (plain and depthwise),
//! ConvTranspose (2×2, stride 2), BatchNormalization, Relu, Add and Sigmoid, on one image at
//! a time. Every node is checked and its weights laid out once, at load; running it is
//! then a sequence of matrix products (candle) and simple loops. An operator or attribute
//! outside that set is refused at load, so a model is either run exactly or not at all.

use std::collections::HashMap;

use candle_core::{Device, Tensor};

use crate::VisionError;
use crate::onnx::{Graph, Node, Weight};

/// Channels × height × width, row-major (batch of one).
#[derive(Debug, Clone, PartialEq)]
pub struct Map {
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub data: Vec<f32>,
}

impl Map {
    pub fn channel(&self, c: usize) -> &[f32] {
        &self.data[c * self.h * self.w..(c + 1) * self.h * self.w]
    }
}

enum Op {
    /// A dense k×k convolution as im2col + a matrix product.
    Conv {
        weight: Tensor,
        bias: Vec<f32>,
        cin: usize,
        k: usize,
        stride: usize,
        pad: usize,
    },
    /// One k×k filter per channel.
    Depthwise {
        weight: Vec<f32>,
        bias: Vec<f32>,
        k: usize,
        stride: usize,
        pad: usize,
    },
    /// 2×2 stride-2 transposed convolution: each input pixel spreads to a 2×2 block, a
    /// matrix product with rows (out channel, dy, dx).
    Up2 {
        weight: Tensor,
        bias: Vec<f32>,
        cin: usize,
        cout: usize,
    },
    /// Per-channel y = a·x + b.
    Affine {
        a: Vec<f32>,
        b: Vec<f32>,
    },
    Relu,
    Sigmoid,
    Add,
}

struct Step {
    op: Op,
    inputs: Vec<String>,
    output: String,
}

/// A loaded graph, ready to run.
pub struct Net {
    steps: Vec<Step>,
    input: String,
    outputs: Vec<String>,
    /// For each value, the last step that reads it (so it is freed after).
    last_use: HashMap<String, usize>,
}

fn bad(what: impl Into<String>) -> VisionError {
    VisionError::Model(what.into())
}

fn attr_pair(node: &Node, name: &str, default: i64) -> Result<usize, VisionError> {
    match node.ints(name) {
        None => Ok(default as usize),
        Some(v) if v.iter().all(|x| *x == v[0]) && v[0] >= 0 => Ok(v[0] as usize),
        Some(v) => Err(bad(format!("{} {}: {name} {v:?} is not supported (only equal on every side)", node.op, node.outputs[0]))),
    }
}

fn weight<'a>(graph: &'a Graph, node: &Node, i: usize) -> Result<&'a Weight, VisionError> {
    let name = node.inputs.get(i).ok_or_else(|| bad(format!("{} lacks input {i}", node.op)))?;
    graph.weights.get(name).ok_or_else(|| bad(format!("{} reads {name}, which is not a weight", node.op)))
}

fn bias(graph: &Graph, node: &Node, i: usize, n: usize) -> Result<Vec<f32>, VisionError> {
    if node.inputs.get(i).is_none_or(|s| s.is_empty()) {
        return Ok(vec![0.0; n]);
    }
    let b = weight(graph, node, i)?;
    if b.data.len() != n {
        return Err(bad(format!("{}: bias has {} values for {n} channels", node.op, b.data.len())));
    }
    Ok(b.data.clone())
}

fn compile(graph: &Graph, node: &Node) -> Result<(Op, Vec<String>), VisionError> {
    let data_input = vec![node.inputs.first().cloned().ok_or_else(|| bad(format!("{} has no input", node.op)))?];
    let op = match node.op.as_str() {
        "Conv" => {
            let w = weight(graph, node, 1)?;
            let [cout, cin_g, kh, kw] = w.dims[..] else { return Err(bad("Conv: weight is not 4-d")) };
            let (k, stride, pad) = (kh, attr_pair(node, "strides", 1)?, attr_pair(node, "pads", 0)?);
            if kh != kw || attr_pair(node, "dilations", 1)? != 1 {
                return Err(bad("Conv: only square, undilated kernels are supported"));
            }
            let group = node.int("group").unwrap_or(1) as usize;
            let bias = bias(graph, node, 2, cout)?;
            if group == 1 {
                let weight = Tensor::from_slice(&w.data, (cout, cin_g * k * k), &Device::Cpu)?;
                Op::Conv { weight, bias, cin: cin_g, k, stride, pad }
            } else if cin_g == 1 && group == cout {
                Op::Depthwise { weight: w.data.clone(), bias, k, stride, pad }
            } else {
                return Err(bad(format!("Conv: group {group} with {cin_g} inputs per group is not supported")));
            }
        }
        "ConvTranspose" => {
            let w = weight(graph, node, 1)?;
            let [cin, cout, 2, 2] = w.dims[..] else { return Err(bad("ConvTranspose: only 2×2 kernels are supported")) };
            if attr_pair(node, "strides", 1)? != 2
                || attr_pair(node, "pads", 0)? != 0
                || attr_pair(node, "dilations", 1)? != 1
                || node.int("group").unwrap_or(1) != 1
                || node.ints("output_padding").is_some_and(|p| p.iter().any(|x| *x != 0))
            {
                return Err(bad("ConvTranspose: only stride 2 without padding is supported"));
            }
            // Rows (o, dy, dx), columns c: W[c][o][dy][dx].
            let mut rows = vec![0.0f32; cout * 4 * cin];
            for c in 0..cin {
                for o in 0..cout {
                    for d in 0..4 {
                        rows[(o * 4 + d) * cin + c] = w.data[(c * cout + o) * 4 + d];
                    }
                }
            }
            let bias = bias(graph, node, 2, cout)?;
            Op::Up2 { weight: Tensor::from_vec(rows, (cout * 4, cin), &Device::Cpu)?, bias, cin, cout }
        }
        "BatchNormalization" => {
            let eps = node.float("epsilon").unwrap_or(1e-5);
            let [scale, shift, mean, var] = [1, 2, 3, 4].map(|i| weight(graph, node, i));
            let (scale, shift, mean, var) = (scale?, shift?, mean?, var?);
            let n = scale.data.len();
            if [shift, mean, var].iter().any(|w| w.data.len() != n) {
                return Err(bad("BatchNormalization: parameters differ in length"));
            }
            let a: Vec<f32> = (0..n).map(|i| scale.data[i] / (var.data[i] + eps).sqrt()).collect();
            let b = (0..n).map(|i| shift.data[i] - mean.data[i] * a[i]).collect();
            Op::Affine { a, b }
        }
        "Relu" => Op::Relu,
        "Sigmoid" => Op::Sigmoid,
        "Add" => {
            if node.inputs.len() != 2 || node.inputs.iter().any(|i| graph.weights.contains_key(i)) {
                return Err(bad("Add: only the sum of two computed values is supported"));
            }
            return Ok((Op::Add, node.inputs.clone()));
        }
        other => return Err(bad(format!("operator {other} is not supported"))),
    };
    Ok((op, data_input))
}

impl Net {
    pub fn new(graph: &Graph) -> Result<Net, VisionError> {
        let [input] = &graph.inputs[..] else { return Err(bad(format!("the graph has {} inputs; one is supported", graph.inputs.len()))) };
        let mut steps = Vec::with_capacity(graph.nodes.len());
        let mut known: std::collections::HashSet<&str> = [input.as_str()].into();
        for node in &graph.nodes {
            let (op, inputs) = compile(graph, node)?;
            if let Some(missing) = inputs.iter().find(|i| !known.contains(i.as_str())) {
                return Err(bad(format!("{} reads {missing} before it is computed", node.op)));
            }
            let [output] = &node.outputs[..] else { return Err(bad(format!("{} has {} outputs", node.op, node.outputs.len()))) };
            known.insert(output);
            steps.push(Step { op, inputs, output: output.clone() });
        }
        if let Some(missing) = graph.outputs.iter().find(|o| !known.contains(o.as_str())) {
            return Err(bad(format!("output {missing} is never computed")));
        }
        let mut last_use = HashMap::new();
        for (i, s) in steps.iter().enumerate() {
            for input in &s.inputs {
                last_use.insert(input.clone(), i);
            }
        }
        Ok(Net { steps, input: input.clone(), outputs: graph.outputs.clone(), last_use })
    }

    /// Runs the graph on `input`; the graph's outputs, in its order.
    pub fn run(&self, input: Map) -> Result<Vec<Map>, VisionError> {
        let mut values: HashMap<&str, Map> = HashMap::from([(self.input.as_str(), input)]);
        for (i, step) in self.steps.iter().enumerate() {
            let x = &values[step.inputs[0].as_str()];
            let y = match &step.op {
                Op::Conv { weight, bias, cin, k, stride, pad } => conv(x, weight, bias, *cin, *k, *stride, *pad)?,
                Op::Depthwise { weight, bias, k, stride, pad } => depthwise(x, weight, bias, *k, *stride, *pad)?,
                Op::Up2 { weight, bias, cin, cout } => up2(x, weight, bias, *cin, *cout)?,
                Op::Affine { a, b } => per_channel(x, a.len(), |c, v| a[c] * v + b[c])?,
                Op::Relu => map(x, |v| v.max(0.0)),
                Op::Sigmoid => map(x, |v| 1.0 / (1.0 + (-v).exp())),
                Op::Add => {
                    let z = &values[step.inputs[1].as_str()];
                    if (x.c, x.h, x.w) != (z.c, z.h, z.w) {
                        return Err(VisionError::Shape(format!("Add of {}×{}×{} and {}×{}×{}", x.c, x.h, x.w, z.c, z.h, z.w)));
                    }
                    Map { data: x.data.iter().zip(&z.data).map(|(a, b)| a + b).collect(), ..*x }
                }
            };
            for input in &step.inputs {
                if self.last_use.get(input) == Some(&i) && !self.outputs.contains(input) {
                    values.remove(input.as_str());
                }
            }
            values.insert(step.output.as_str(), y);
        }
        self.outputs.iter().map(|o| values.remove(o.as_str()).ok_or_else(|| bad(format!("output {o} missing")))).collect()
    }
}

fn map(x: &Map, f: impl Fn(f32) -> f32) -> Map {
    Map { data: x.data.iter().map(|v| f(*v)).collect(), ..*x }
}

fn per_channel(x: &Map, n: usize, f: impl Fn(usize, f32) -> f32) -> Result<Map, VisionError> {
    if n != x.c {
        return Err(VisionError::Shape(format!("{n} channel parameters for {} channels", x.c)));
    }
    let hw = x.h * x.w;
    Ok(Map { data: x.data.iter().enumerate().map(|(i, v)| f(i / hw, *v)).collect(), ..*x })
}

fn out_size(size: usize, k: usize, stride: usize, pad: usize) -> Result<usize, VisionError> {
    (size + 2 * pad)
        .checked_sub(k)
        .map(|n| n / stride + 1)
        .ok_or_else(|| VisionError::Shape(format!("{size} px is smaller than a {k}×{k} kernel")))
}

fn matmul(a: &Tensor, b: Vec<f32>, rows: usize, cols: usize) -> Result<Vec<f32>, VisionError> {
    let b = Tensor::from_vec(b, (rows, cols), &Device::Cpu)?;
    Ok(a.matmul(&b)?.flatten_all()?.to_vec1::<f32>()?)
}

fn conv(x: &Map, weight: &Tensor, bias: &[f32], cin: usize, k: usize, stride: usize, pad: usize) -> Result<Map, VisionError> {
    if x.c != cin {
        return Err(VisionError::Shape(format!("Conv of {cin} channels given {}", x.c)));
    }
    let (oh, ow) = (out_size(x.h, k, stride, pad)?, out_size(x.w, k, stride, pad)?);
    let cols = if k == 1 && stride == 1 && pad == 0 {
        x.data.clone()
    } else {
        let mut cols = vec![0.0f32; cin * k * k * oh * ow];
        for c in 0..cin {
            let plane = x.channel(c);
            for ky in 0..k {
                for kx in 0..k {
                    let row = &mut cols[((c * k + ky) * k + kx) * oh * ow..][..oh * ow];
                    for oy in 0..oh {
                        let Some(y) = (oy * stride + ky).checked_sub(pad).filter(|y| *y < x.h) else { continue };
                        for ox in 0..ow {
                            if let Some(xx) = (ox * stride + kx).checked_sub(pad).filter(|xx| *xx < x.w) {
                                row[oy * ow + ox] = plane[y * x.w + xx];
                            }
                        }
                    }
                }
            }
        }
        cols
    };
    let mut data = matmul(weight, cols, cin * k * k, oh * ow)?;
    for (o, b) in bias.iter().enumerate() {
        data[o * oh * ow..(o + 1) * oh * ow].iter_mut().for_each(|v| *v += b);
    }
    Ok(Map { c: bias.len(), h: oh, w: ow, data })
}

fn depthwise(x: &Map, weight: &[f32], bias: &[f32], k: usize, stride: usize, pad: usize) -> Result<Map, VisionError> {
    if bias.len() != x.c {
        return Err(VisionError::Shape(format!("depthwise Conv of {} channels given {}", bias.len(), x.c)));
    }
    let (oh, ow) = (out_size(x.h, k, stride, pad)?, out_size(x.w, k, stride, pad)?);
    let mut data = vec![0.0f32; x.c * oh * ow];
    // Channels are independent: split them over the cores.
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(x.c).max(1);
    let per = x.c.div_ceil(threads);
    std::thread::scope(|scope| {
        for (i, out) in data.chunks_mut(per * oh * ow).enumerate() {
            scope.spawn(move || {
                let mut padded = Vec::new();
                for (j, plane_out) in out.chunks_exact_mut(oh * ow).enumerate() {
                    let c = i * per + j;
                    let filter = &weight[c * k * k..(c + 1) * k * k];
                    filter_plane(x.channel(c), x.h, x.w, filter, bias[c], k, stride, pad, &mut padded, plane_out, ow);
                }
            });
        }
    });
    Ok(Map { c: x.c, h: oh, w: ow, data })
}

/// One channel of a depthwise convolution: the plane is copied once into a zero-padded
/// buffer so the inner loops need no bounds tests.
#[allow(clippy::too_many_arguments)]
fn filter_plane(
    plane: &[f32],
    h: usize,
    w: usize,
    filter: &[f32],
    bias: f32,
    k: usize,
    stride: usize,
    pad: usize,
    padded: &mut Vec<f32>,
    out: &mut [f32],
    ow: usize,
) {
    let pw = w + 2 * pad;
    padded.clear();
    padded.resize((h + 2 * pad) * pw, 0.0);
    for y in 0..h {
        padded[(y + pad) * pw + pad..][..w].copy_from_slice(&plane[y * w..(y + 1) * w]);
    }
    for (oy, row) in out.chunks_exact_mut(ow).enumerate() {
        row.fill(bias);
        for ky in 0..k {
            let src = &padded[(oy * stride + ky) * pw..][..pw];
            for kx in 0..k {
                let f = filter[ky * k + kx];
                for (ox, v) in row.iter_mut().enumerate() {
                    *v += src[ox * stride + kx] * f;
                }
            }
        }
    }
}

fn up2(x: &Map, weight: &Tensor, bias: &[f32], cin: usize, cout: usize) -> Result<Map, VisionError> {
    if x.c != cin {
        return Err(VisionError::Shape(format!("ConvTranspose of {cin} channels given {}", x.c)));
    }
    let hw = x.h * x.w;
    let spread = matmul(weight, x.data.clone(), cin, hw)?;
    let (h, w) = (x.h * 2, x.w * 2);
    let mut data = vec![0.0f32; cout * h * w];
    for o in 0..cout {
        for d in 0..4 {
            let (dy, dx) = (d / 2, d % 2);
            let row = &spread[(o * 4 + d) * hw..][..hw];
            for y in 0..x.h {
                for xx in 0..x.w {
                    data[(o * h + 2 * y + dy) * w + 2 * xx + dx] = row[y * x.w + xx] + bias[o];
                }
            }
        }
    }
    Ok(Map { c: cout, h, w, data })
}
