//! SavedModel, MetaGraphDef, SignatureDef, object graphs and tensor-bundle messages
//! (tf-formats.md §1–3). Only the fields the converter reads are declared.

use std::collections::BTreeMap;

use super::{AttrValue, GraphDef, NodeDef, TensorShapeProto};

/// `tensorflow.SavedModel` (`saved_model.pb`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct SavedModel {
    #[prost(int64, tag = "1")]
    pub saved_model_schema_version: i64,
    #[prost(message, repeated, tag = "2")]
    pub meta_graphs: Vec<MetaGraphDef>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct MetaGraphDef {
    #[prost(message, optional, tag = "1")]
    pub meta_info_def: Option<MetaInfoDef>,
    #[prost(message, optional, tag = "2")]
    pub graph_def: Option<GraphDef>,
    /// TF1 only: which `Saver` restores the variables.
    #[prost(message, optional, tag = "3")]
    pub saver_def: Option<SaverDef>,
    /// TF1 only: named lists of the graph's objects (`trainable_variables`).
    #[prost(btree_map = "string, message", tag = "4")]
    pub collection_def: BTreeMap<String, CollectionDef>,
    #[prost(btree_map = "string, message", tag = "5")]
    pub signature_def: BTreeMap<String, SignatureDef>,
    #[prost(message, optional, tag = "7")]
    pub object_graph_def: Option<SavedObjectGraph>,
}

/// `tensorflow.CollectionDef`: a oneof of lists, of which the converter reads the list of
/// serialized protos (a variable collection's `VariableDef`s).
#[derive(Clone, PartialEq, prost::Message)]
pub struct CollectionDef {
    #[prost(message, optional, tag = "2")]
    pub bytes_list: Option<BytesList>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct BytesList {
    #[prost(bytes = "vec", repeated, tag = "1")]
    pub value: Vec<Vec<u8>>,
}

/// `tensorflow.VariableDef`, as a TF1 variable collection holds it.
#[derive(Clone, PartialEq, prost::Message)]
pub struct VariableDef {
    /// The variable's tensor (`conv1/kernel:0`).
    #[prost(string, tag = "1")]
    pub variable_name: String,
}

/// `tensorflow.SaverDef`; its tensor names say which of a graph's savers is the real one.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SaverDef {
    #[prost(string, tag = "1")]
    pub filename_tensor_name: String,
    #[prost(string, tag = "2")]
    pub save_tensor_name: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct MetaInfoDef {
    #[prost(message, optional, tag = "2")]
    pub stripped_op_list: Option<OpList>,
    #[prost(string, repeated, tag = "4")]
    pub tags: Vec<String>,
    #[prost(string, tag = "5")]
    pub tensorflow_version: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SignatureDef {
    #[prost(btree_map = "string, message", tag = "1")]
    pub inputs: BTreeMap<String, TensorInfo>,
    #[prost(btree_map = "string, message", tag = "2")]
    pub outputs: BTreeMap<String, TensorInfo>,
    #[prost(string, tag = "3")]
    pub method_name: String,
}

/// `TensorInfo`; only the dense `name` member of its oneof is used.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorInfo {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(int32, tag = "2")]
    pub dtype: i32,
    #[prost(message, optional, tag = "3")]
    pub tensor_shape: Option<TensorShapeProto>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct OpList {
    #[prost(message, repeated, tag = "1")]
    pub op: Vec<OpDef>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct OpDef {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(message, repeated, tag = "2")]
    pub input_arg: Vec<ArgDef>,
    #[prost(message, repeated, tag = "3")]
    pub output_arg: Vec<ArgDef>,
    #[prost(message, repeated, tag = "4")]
    pub attr: Vec<AttrDef>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ArgDef {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(int32, tag = "3")]
    pub r#type: i32,
    #[prost(string, tag = "4")]
    pub type_attr: String,
    #[prost(string, tag = "5")]
    pub number_attr: String,
    #[prost(string, tag = "6")]
    pub type_list_attr: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct AttrDef {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub r#type: String,
    #[prost(message, optional, tag = "3")]
    pub default_value: Option<AttrValue>,
}

/// `tensorflow.FunctionDef` (full).
#[derive(Clone, PartialEq, prost::Message)]
pub struct FunctionDef {
    #[prost(message, optional, tag = "1")]
    pub signature: Option<OpDef>,
    #[prost(message, repeated, tag = "3")]
    pub node_def: Vec<NodeDef>,
    #[prost(btree_map = "string, string", tag = "4")]
    pub ret: BTreeMap<String, String>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SavedObjectGraph {
    #[prost(message, repeated, tag = "1")]
    pub nodes: Vec<SavedObject>,
    #[prost(btree_map = "string, message", tag = "2")]
    pub concrete_functions: BTreeMap<String, SavedConcreteFunction>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SavedObject {
    #[prost(message, repeated, tag = "1")]
    pub children: Vec<ObjectReference>,
    #[prost(oneof = "saved_object::Kind", tags = "4, 7, 9, 10")]
    pub kind: Option<saved_object::Kind>,
}

pub mod saved_object {
    /// The members of `SavedObject.kind` the converter uses.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Kind {
        #[prost(message, tag = "4")]
        UserObject(super::SavedUserObject),
        #[prost(message, tag = "7")]
        Variable(super::SavedVariable),
        #[prost(message, tag = "9")]
        Constant(super::SavedConstant),
        /// A resource other than a variable: a lookup table, a queue.
        #[prost(message, tag = "10")]
        Resource(super::SavedResource),
    }
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SavedUserObject {
    #[prost(string, tag = "1")]
    pub identifier: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SavedVariable {
    #[prost(int32, tag = "1")]
    pub dtype: i32,
    #[prost(message, optional, tag = "2")]
    pub shape: Option<TensorShapeProto>,
    /// False for a weight its model keeps but does not train (Keras' `trainable=False`).
    #[prost(bool, tag = "3")]
    pub trainable: bool,
    #[prost(string, tag = "6")]
    pub name: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SavedResource {
    #[prost(string, tag = "1")]
    pub device: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SavedConstant {
    #[prost(string, tag = "1")]
    pub operation: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SavedConcreteFunction {
    #[prost(int32, repeated, tag = "2")]
    pub bound_inputs: Vec<i32>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ObjectReference {
    #[prost(int32, tag = "1")]
    pub node_id: i32,
    #[prost(string, tag = "2")]
    pub local_name: String,
}

/// `TrackableObjectGraph`, stored in the checkpoint under `_CHECKPOINTABLE_OBJECT_GRAPH`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TrackableObjectGraph {
    #[prost(message, repeated, tag = "1")]
    pub nodes: Vec<TrackableObject>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct TrackableObject {
    #[prost(message, repeated, tag = "1")]
    pub children: Vec<ObjectReference>,
    #[prost(message, repeated, tag = "2")]
    pub attributes: Vec<SerializedTensor>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SerializedTensor {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub full_name: String,
    #[prost(string, tag = "3")]
    pub checkpoint_key: String,
}

/// The value of the empty key of a bundle index.
#[derive(Clone, PartialEq, prost::Message)]
pub struct BundleHeaderProto {
    #[prost(int32, tag = "1")]
    pub num_shards: i32,
    #[prost(int32, tag = "2")]
    pub endianness: i32,
}

/// The value of every other key of a bundle index.
#[derive(Clone, PartialEq, prost::Message)]
pub struct BundleEntryProto {
    #[prost(int32, tag = "1")]
    pub dtype: i32,
    #[prost(message, optional, tag = "2")]
    pub shape: Option<TensorShapeProto>,
    #[prost(int32, tag = "3")]
    pub shard_id: i32,
    #[prost(int64, tag = "4")]
    pub offset: i64,
    #[prost(int64, tag = "5")]
    pub size: i64,
    #[prost(fixed32, tag = "6")]
    pub crc32c: u32,
    #[prost(message, repeated, tag = "7")]
    pub slices: Vec<TensorSliceProto>,
}

/// One slice of a partitioned variable: an extent per dimension.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorSliceProto {
    #[prost(message, repeated, tag = "1")]
    pub extent: Vec<SliceExtent>,
}

/// `TensorSliceProto.Extent`: `length` absent means "to the end of the dimension".
#[derive(Clone, PartialEq, prost::Message)]
pub struct SliceExtent {
    #[prost(int64, tag = "1")]
    pub start: i64,
    #[prost(int64, optional, tag = "2")]
    pub length: Option<i64>,
}
