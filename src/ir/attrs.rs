//! Typed attribute access with errors that name the node, op and attribute.
//!
//! `attr_x` requires the attribute; `attr_x_or` falls back to the OpDef default (TF strips
//! attributes equal to their default from SavedModels, so absence must mean "default").

use crate::error::{Error, Result};
use crate::proto::attr_value::Value;
use crate::tensor::{DType, Tensor};

use super::Node;

/// A bool attribute `passes::channels_first` sets on the transposes it makes into the
/// channels-last form: their input is channels-first already, as PyTorch's layers want it.
pub const CHANNELS_LAST: &str = "_tf2torch_channels_last";

impl Node {
    fn attr_err(&self, attr: &str, what: &str) -> Error {
        Error::node(&self.name, &self.op, format!("attribute '{attr}' {what}"))
    }

    fn attr_value(&self, attr: &str) -> Option<&Value> {
        self.attrs.get(attr).and_then(|a| a.value.as_ref())
    }

    /// Sets a list-of-ints attribute (what passes rewrite: strides, dilations, paddings).
    pub fn set_attr_ints(&mut self, attr: &str, v: &[i64]) {
        let list = crate::proto::ListValue { i: v.to_vec(), ..Default::default() };
        let value = Some(Value::List(Box::new(list)));
        self.attrs.insert(attr.into(), crate::proto::AttrValue { value });
    }

    /// Sets a string attribute (`padding`).
    pub fn set_attr_str(&mut self, attr: &str, v: &str) {
        let value = Some(Value::S(v.as_bytes().to_vec()));
        self.attrs.insert(attr.into(), crate::proto::AttrValue { value });
    }

    pub fn set_attr_bool(&mut self, attr: &str, v: bool) {
        let value = Some(Value::B(v));
        self.attrs.insert(attr.into(), crate::proto::AttrValue { value });
    }

    /// Sets an integer attribute (`shrink_axis_mask`).
    pub fn set_attr_int(&mut self, attr: &str, v: i64) {
        let value = Some(Value::I(v));
        self.attrs.insert(attr.into(), crate::proto::AttrValue { value });
    }

    /// Sets a type attribute (`out_type`).
    pub fn set_attr_type(&mut self, attr: &str, t: DType) {
        let value = Some(Value::Type(t.to_tf()));
        self.attrs.insert(attr.into(), crate::proto::AttrValue { value });
    }

    pub fn has_attr(&self, attr: &str) -> bool {
        self.attr_value(attr).is_some()
    }

    pub fn attr_int(&self, attr: &str) -> Result<i64> {
        match self.attr_value(attr) {
            Some(Value::I(i)) => Ok(*i),
            Some(_) => Err(self.attr_err(attr, "is not an int")),
            None => Err(self.attr_err(attr, "is missing")),
        }
    }

    pub fn attr_int_or(&self, attr: &str, default: i64) -> Result<i64> {
        if self.has_attr(attr) { self.attr_int(attr) } else { Ok(default) }
    }

    pub fn attr_float_or(&self, attr: &str, default: f32) -> Result<f32> {
        match self.attr_value(attr) {
            Some(Value::F(f)) => Ok(*f),
            Some(_) => Err(self.attr_err(attr, "is not a float")),
            None => Ok(default),
        }
    }

    pub fn attr_bool_or(&self, attr: &str, default: bool) -> Result<bool> {
        match self.attr_value(attr) {
            Some(Value::B(b)) => Ok(*b),
            Some(_) => Err(self.attr_err(attr, "is not a bool")),
            None => Ok(default),
        }
    }

    /// A string attribute (TF stores them as bytes); must be UTF-8.
    pub fn attr_str(&self, attr: &str) -> Result<String> {
        match self.attr_value(attr) {
            Some(Value::S(s)) => {
                String::from_utf8(s.clone()).map_err(|_| self.attr_err(attr, "is not valid UTF-8"))
            }
            Some(_) => Err(self.attr_err(attr, "is not a string")),
            None => Err(self.attr_err(attr, "is missing")),
        }
    }

    pub fn attr_str_or(&self, attr: &str, default: &str) -> Result<String> {
        if self.has_attr(attr) { self.attr_str(attr) } else { Ok(default.to_string()) }
    }

    pub fn attr_ints(&self, attr: &str) -> Result<Vec<i64>> {
        match self.attr_value(attr) {
            Some(Value::List(l)) => Ok(l.i.clone()),
            Some(_) => Err(self.attr_err(attr, "is not a list of ints")),
            None => Err(self.attr_err(attr, "is missing")),
        }
    }

    pub fn attr_floats(&self, attr: &str) -> Result<Vec<f32>> {
        match self.attr_value(attr) {
            Some(Value::List(l)) => Ok(l.f.clone()),
            Some(_) => Err(self.attr_err(attr, "is not a list of floats")),
            None => Err(self.attr_err(attr, "is missing")),
        }
    }

    /// A list of strings (each UTF-8).
    pub fn attr_strs(&self, attr: &str) -> Result<Vec<String>> {
        match self.attr_value(attr) {
            Some(Value::List(l)) => {
                l.s.iter()
                    .map(|s| {
                        String::from_utf8(s.clone())
                            .map_err(|_| self.attr_err(attr, "is not valid UTF-8"))
                    })
                    .collect()
            }
            Some(_) => Err(self.attr_err(attr, "is not a list of strings")),
            None => Err(self.attr_err(attr, "is missing")),
        }
    }

    pub fn attr_ints_or(&self, attr: &str, default: &[i64]) -> Result<Vec<i64>> {
        if self.has_attr(attr) { self.attr_ints(attr) } else { Ok(default.to_vec()) }
    }

    pub fn attr_type(&self, attr: &str) -> Result<DType> {
        match self.attr_value(attr) {
            Some(Value::Type(t)) => DType::from_tf(*t)
                .ok_or_else(|| self.attr_err(attr, &format!("has unsupported dtype {t}"))),
            Some(_) => Err(self.attr_err(attr, "is not a type")),
            None => Err(self.attr_err(attr, "is missing")),
        }
    }

    /// The type of what the op makes, as its attributes say, for an op nothing translates
    /// or infers: a type for the output (`Tout` of a table lookup, `DstT` of a cast,
    /// `out_type`), else the declared `dtype`, else the operands' `T`.
    pub fn output_type(&self) -> Option<DType> {
        ["Tout", "DstT", "out_type", "dtype", "T"].iter().find_map(|a| self.attr_type(a).ok())
    }

    /// A type attribute, `default` where the node has none.
    pub fn attr_type_or(&self, attr: &str, default: DType) -> Result<DType> {
        if self.attr_value(attr).is_none() {
            return Ok(default);
        }
        self.attr_type(attr)
    }

    pub fn attr_tensor(&self, attr: &str) -> Result<Tensor> {
        match self.attr_value(attr) {
            Some(Value::Tensor(t)) => Tensor::from_proto(t)
                .map_err(|e| self.attr_err(attr, &format!("holds a bad tensor: {e}"))),
            Some(_) => Err(self.attr_err(attr, "is not a tensor")),
            None => Err(self.attr_err(attr, "is missing")),
        }
    }

    /// A shape attribute; `Ok(None)` for unknown rank.
    pub fn attr_shape(&self, attr: &str) -> Result<crate::ir::Shape> {
        match self.attr_value(attr) {
            Some(Value::Shape(s)) if s.unknown_rank => Ok(None),
            Some(Value::Shape(s)) => crate::tensor::shape_from_proto(Some(s))
                .map(Some)
                .map_err(|e| self.attr_err(attr, &e.to_string())),
            Some(_) => Err(self.attr_err(attr, "is not a shape")),
            None => Ok(None),
        }
    }

    /// A one-line, human-readable rendering of an attribute value (for stubs and reports).
    pub fn attr_display(&self, attr: &str) -> String {
        self.attrs.get(attr).map_or("<unset>".into(), display)
    }
}

/// An attribute value as a person reads it (`1`, `"SAME"`, `[1, 2, 2, 1]`, `float32`).
pub fn display(attr: &crate::proto::AttrValue) -> String {
    match &attr.value {
        None => "<unset>".into(),
        Some(Value::I(i)) => i.to_string(),
        Some(Value::F(f)) => f.to_string(),
        Some(Value::B(b)) => b.to_string(),
        Some(Value::S(s)) => format!("{:?}", String::from_utf8_lossy(s)),
        Some(Value::Type(t)) => DType::from_tf(*t).map_or(format!("dtype {t}"), |d| d.to_string()),
        Some(Value::List(l)) => format!("{:?}", l.i),
        Some(Value::Shape(s)) => format!("{:?}", s.dim.iter().map(|d| d.size).collect::<Vec<_>>()),
        Some(Value::Tensor(_)) => "<tensor>".into(),
        Some(Value::Placeholder(p)) => format!("<placeholder {p}>"),
        Some(Value::Func(f)) => format!("<function {}>", f.name),
    }
}
