// Generic access to every ATen operator through the c10 dispatcher. JS resolves an operator once
// to an id, then calls it with positional arguments; the operator's schema drives the conversion,
// so one entry point serves all ops and autograd, autocast and no-grad apply as in PyTorch.
#include "common.h"

#include <ATen/core/dispatch/Dispatcher.h>

#include <deque>

namespace groco {
namespace {

struct OpEntry {
  c10::OperatorHandle handle;
  std::string name;
};

std::deque<OpEntry> ops;

[[noreturn]] void ArgError(const OpEntry& op, const c10::Argument& arg, const std::string& what) {
  throw std::invalid_argument(op.name + ": argument '" + arg.name() + "' " + what);
}

int64_t ToInt(const OpEntry& op, const c10::Argument& arg, const Napi::Value& v) {
  if (v.IsBigInt()) {
    bool lossless = true;
    return v.As<Napi::BigInt>().Int64Value(&lossless);
  }
  if (v.IsBoolean()) return v.As<Napi::Boolean>().Value() ? 1 : 0;
  if (!v.IsNumber()) ArgError(op, arg, "expected an integer");
  double d = v.As<Napi::Number>().DoubleValue();
  if (d != static_cast<double>(static_cast<int64_t>(d))) {
    ArgError(op, arg, "expected an integer, got " + std::to_string(d));
  }
  return static_cast<int64_t>(d);
}

c10::IValue ToIValue(const OpEntry& op, const c10::Argument& arg, const c10::TypePtr& type,
                     const Napi::Value& v);

c10::IValue ToList(const OpEntry& op, const c10::Argument& arg, const c10::TypePtr& elem,
                   const Napi::Value& v) {
  auto kind = elem->kind();

  // PyTorch accepts one int where an int[N] is expected (stride=2 means (2, 2)).
  if (v.IsNumber() && (kind == c10::TypeKind::IntType || kind == c10::TypeKind::SymIntType)) {
    int64_t n = arg.N().value_or(1);
    return c10::IValue(std::vector<int64_t>(n, ToInt(op, arg, v)));
  }
  if (!v.IsArray()) ArgError(op, arg, "expected an array");
  auto array = v.As<Napi::Array>();
  uint32_t n = array.Length();

  switch (kind) {
    case c10::TypeKind::IntType:
    case c10::TypeKind::SymIntType: {
      std::vector<int64_t> out(n);
      for (uint32_t i = 0; i < n; i++) out[i] = ToInt(op, arg, array.Get(i));
      return c10::IValue(out);
    }
    case c10::TypeKind::FloatType: {
      std::vector<double> out(n);
      for (uint32_t i = 0; i < n; i++) out[i] = array.Get(i).As<Napi::Number>().DoubleValue();
      return c10::IValue(out);
    }
    case c10::TypeKind::BoolType: {
      c10::List<bool> out;
      for (uint32_t i = 0; i < n; i++) out.push_back(array.Get(i).ToBoolean().Value());
      return c10::IValue(out);
    }
    case c10::TypeKind::TensorType: {
      c10::List<at::Tensor> out;
      out.reserve(n);
      for (uint32_t i = 0; i < n; i++) out.push_back(UnwrapTensor(array.Get(i), op.name.c_str()));
      return c10::IValue(out);
    }
    case c10::TypeKind::OptionalType: {
      c10::List<c10::optional<at::Tensor>> out;
      for (uint32_t i = 0; i < n; i++) {
        auto item = array.Get(i);
        if (item.IsNull() || item.IsUndefined()) {
          out.push_back(c10::nullopt);
        } else {
          out.push_back(UnwrapTensor(item, op.name.c_str()));
        }
      }
      return c10::IValue(out);
    }
    default:
      ArgError(op, arg, "has a list type this binding does not convert: " + elem->str());
  }
}

c10::IValue ToIValue(const OpEntry& op, const c10::Argument& arg, const c10::TypePtr& type,
                     const Napi::Value& v) {
  switch (type->kind()) {
    case c10::TypeKind::TensorType:
      // UnwrapTensor checks the handle's type tag itself
      if (!v.IsExternal()) ArgError(op, arg, "expected a tensor");
      return UnwrapTensor(v, op.name.c_str());
    case c10::TypeKind::OptionalType:
      if (v.IsNull() || v.IsUndefined()) return c10::IValue();
      return ToIValue(op, arg, type->castRaw<c10::OptionalType>()->getElementType(), v);
    case c10::TypeKind::IntType:
    case c10::TypeKind::SymIntType:
    case c10::TypeKind::ScalarTypeType:
    case c10::TypeKind::LayoutType:
    case c10::TypeKind::MemoryFormatType:
      return c10::IValue(ToInt(op, arg, v));
    case c10::TypeKind::FloatType:
      if (!v.IsNumber()) ArgError(op, arg, "expected a number");
      return c10::IValue(v.As<Napi::Number>().DoubleValue());
    case c10::TypeKind::BoolType:
      if (!v.IsBoolean()) ArgError(op, arg, "expected a boolean");
      return c10::IValue(v.As<Napi::Boolean>().Value());
    case c10::TypeKind::NumberType: {
      // A JS number that is integral becomes an integer Scalar, as a Python int would, so that
      // integer tensors stay integer; others become double.
      if (v.IsBoolean()) return c10::IValue(v.As<Napi::Boolean>().Value());
      if (v.IsBigInt()) return c10::IValue(ToInt(op, arg, v));
      if (!v.IsNumber()) ArgError(op, arg, "expected a number");
      double d = v.As<Napi::Number>().DoubleValue();
      if (std::isfinite(d) && std::abs(d) < 9.0e15 && d == std::floor(d)) {
        return c10::IValue(static_cast<int64_t>(d));
      }
      return c10::IValue(d);
    }
    case c10::TypeKind::StringType:
      if (!v.IsString()) ArgError(op, arg, "expected a string");
      return c10::IValue(v.As<Napi::String>().Utf8Value());
    case c10::TypeKind::DeviceObjType:
      if (!v.IsString()) ArgError(op, arg, "expected a device string such as 'cpu' or 'cuda:0'");
      return c10::IValue(c10::Device(v.As<Napi::String>().Utf8Value()));
    case c10::TypeKind::GeneratorType:
      return c10::IValue(UnwrapGenerator(v, op.name.c_str()));
    case c10::TypeKind::ListType:
      return ToList(op, arg, type->castRaw<c10::ListType>()->getElementType(), v);
    default:
      ArgError(op, arg, "has a type this binding does not convert: " + type->str());
  }
}

Napi::Value FromIValue(Napi::Env env, const c10::IValue& v) {
  if (v.isTensor()) return WrapTensor(env, v.toTensor());
  if (v.isNone()) return env.Null();
  if (v.isInt()) return Napi::Number::New(env, static_cast<double>(v.toInt()));
  if (v.isDouble()) return Napi::Number::New(env, v.toDouble());
  if (v.isBool()) return Napi::Boolean::New(env, v.toBool());
  if (v.isString()) return Napi::String::New(env, v.toStringRef());
  if (v.isTensorList()) {
    auto list = v.toTensorList();
    auto out = Napi::Array::New(env, list.size());
    for (size_t i = 0; i < list.size(); i++) out.Set(i, WrapTensor(env, list.get(i)));
    return out;
  }
  if (v.isTuple()) {
    const auto& elements = v.toTupleRef().elements();
    auto out = Napi::Array::New(env, elements.size());
    for (size_t i = 0; i < elements.size(); i++) out.Set(i, FromIValue(env, elements[i]));
    return out;
  }
  if (v.isList()) {
    auto list = v.toListRef();
    auto out = Napi::Array::New(env, list.size());
    for (size_t i = 0; i < list.size(); i++) out.Set(i, FromIValue(env, list[i]));
    return out;
  }
  if (v.isScalar()) return Napi::Number::New(env, v.toScalar().toDouble());
  throw std::runtime_error("cannot convert an operator result of kind " + v.tagKind());
}

Napi::Value ResolveOp(const Napi::CallbackInfo& info) {
  return Guarded(info, [&]() -> Napi::Value {
    auto name = info[0].As<Napi::String>().Utf8Value();
    auto overload = info[1].As<Napi::String>().Utf8Value();
    auto handle = c10::Dispatcher::singleton().findSchema({name, overload});
    if (!handle.has_value()) {
      throw std::invalid_argument("unknown operator " + name +
                                  (overload.empty() ? "" : "." + overload));
    }
    ops.push_back(OpEntry{*handle, overload.empty() ? name : name + "." + overload});
    return Napi::Number::New(info.Env(), static_cast<double>(ops.size() - 1));
  });
}

Napi::Value OpSchema(const Napi::CallbackInfo& info) {
  return Guarded(info, [&]() -> Napi::Value {
    auto id = info[0].As<Napi::Number>().Uint32Value();
    if (id >= ops.size()) throw std::invalid_argument("opSchema: unknown operator id");
    std::stringstream ss;
    ss << ops[id].handle.schema();
    return Napi::String::New(info.Env(), ss.str());
  });
}

// callOp(id, args[], discardResult?)
Napi::Value CallOp(const Napi::CallbackInfo& info) {
  return Guarded(info, [&]() -> Napi::Value {
    auto env = info.Env();
    auto id = info[0].As<Napi::Number>().Uint32Value();
    if (id >= ops.size()) throw std::invalid_argument("callOp: unknown operator id");
    const auto& op = ops[id];
    const auto& schema = op.handle.schema();
    const auto& arguments = schema.arguments();
    auto args = info[1].As<Napi::Array>();
    uint32_t given = args.Length();
    if (given > arguments.size()) {
      throw std::invalid_argument(op.name + ": " + std::to_string(given) + " arguments given, " +
                                  "at most " + std::to_string(arguments.size()) + " accepted");
    }

    torch::jit::Stack stack;
    stack.reserve(arguments.size());
    for (size_t i = 0; i < arguments.size(); i++) {
      const auto& arg = arguments[i];
      Napi::Value v = i < given ? args.Get(static_cast<uint32_t>(i)) : env.Undefined();
      if (v.IsUndefined()) {
        if (arg.default_value().has_value()) {
          stack.push_back(*arg.default_value());
          continue;
        }
        if (arg.type()->kind() == c10::TypeKind::OptionalType) {
          stack.emplace_back();
          continue;
        }
        ArgError(op, arg, "is required");
      }
      stack.push_back(ToIValue(op, arg, arg.type(), v));
    }

    op.handle.callBoxed(&stack);

    if (info.Length() > 2 && info[2].ToBoolean().Value()) return env.Undefined();
    if (stack.empty()) return env.Undefined();
    if (stack.size() == 1) return FromIValue(env, stack[0]);
    auto out = Napi::Array::New(env, stack.size());
    for (size_t i = 0; i < stack.size(); i++) out.Set(i, FromIValue(env, stack[i]));
    return out;
  });
}

}  // namespace

void InitOps(Napi::Env env, Napi::Object exports) {
  exports.Set("resolveOp", Napi::Function::New(env, ResolveOp));
  exports.Set("opSchema", Napi::Function::New(env, OpSchema));
  exports.Set("callOp", Napi::Function::New(env, CallOp));
}

}  // namespace groco
