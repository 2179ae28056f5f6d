// Autograd from JS: backward, gradients, grad mode, autocast, and functions whose forward and
// backward are written in JS (needed for gathers across processes).
#include "common.h"

#include <ATen/autocast_mode.h>
#include <torch/csrc/autograd/autograd.h>

#include <thread>

namespace groco {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

std::vector<at::Tensor> ToTensors(const Napi::Value& value, const char* what, bool allowNull) {
  std::vector<at::Tensor> out;
  if (value.IsNull() || value.IsUndefined()) return out;
  auto array = value.As<Napi::Array>();
  for (uint32_t i = 0; i < array.Length(); i++) {
    auto item = array.Get(i);
    if (allowNull && (item.IsNull() || item.IsUndefined())) {
      out.emplace_back();
    } else {
      out.push_back(UnwrapTensor(item, what));
    }
  }
  return out;
}

Napi::Array FromTensors(Napi::Env env, const std::vector<at::Tensor>& tensors) {
  auto out = Napi::Array::New(env, tensors.size());
  for (size_t i = 0; i < tensors.size(); i++) out.Set(i, WrapTensor(env, tensors[i]));
  return out;
}

// backward(outputs[], grads[] | null, retainGraph, createGraph)
Napi::Value Backward(const Napi::CallbackInfo& info) {
  return Guarded(info, [&]() -> Napi::Value {
    auto outputs = ToTensors(info[0], "backward", false);
    auto grads = ToTensors(info[1], "backward", true);
    bool retain = info[2].ToBoolean().Value();
    bool create = info[3].ToBoolean().Value();
    torch::autograd::backward(outputs, grads, retain, create);
    return info.Env().Undefined();
  });
}

// grad(outputs[], inputs[], gradOutputs[] | null, retainGraph, createGraph, allowUnused)
Napi::Value Grad(const Napi::CallbackInfo& info) {
  return Guarded(info, [&]() -> Napi::Value {
    auto outputs = ToTensors(info[0], "grad", false);
    auto inputs = ToTensors(info[1], "grad", false);
    auto gradOutputs = ToTensors(info[2], "grad", true);
    bool retain = info[3].ToBoolean().Value();
    bool create = info[4].ToBoolean().Value();
    bool allowUnused = info[5].ToBoolean().Value();
    auto grads = torch::autograd::grad(outputs, inputs, gradOutputs, retain, create, allowUnused);
    return FromTensors(info.Env(), grads);
  });
}

Napi::Value GetGrad(const Napi::CallbackInfo& info) {
  return Guarded(info, [&]() -> Napi::Value {
    return WrapTensor(info.Env(), UnwrapTensor(info[0], "grad").grad());
  });
}

Napi::Value SetGrad(const Napi::CallbackInfo& info) {
  return Guarded(info, [&]() -> Napi::Value {
    auto& tensor = UnwrapTensor(info[0], "setGrad");
    if (info[1].IsNull() || info[1].IsUndefined()) {
      tensor.mutable_grad() = at::Tensor();
    } else {
      tensor.mutable_grad() = UnwrapTensor(info[1], "setGrad");
    }
    return info.Env().Undefined();
  });
}

Napi::Value SetRequiresGrad(const Napi::CallbackInfo& info) {
  return Guarded(info, [&]() -> Napi::Value {
    UnwrapTensor(info[0], "requiresGrad").requires_grad_(info[1].ToBoolean().Value());
    return info.Env().Undefined();
  });
}

Napi::Value IsLeaf(const Napi::CallbackInfo& info) {
  return Guarded(info, [&]() -> Napi::Value {
    return Napi::Boolean::New(info.Env(), UnwrapTensor(info[0], "isLeaf").is_leaf());
  });
}

Napi::Value SetGradEnabled(const Napi::CallbackInfo& info) {
  bool previous = at::GradMode::is_enabled();
  at::GradMode::set_enabled(info[0].ToBoolean().Value());
  return Napi::Boolean::New(info.Env(), previous);
}

Napi::Value IsGradEnabled(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), at::GradMode::is_enabled());
}

// setAutocast(device 'cpu' | 'cuda', enabled, dtype code, entering) -> [previous enabled, dtype].
// `entering` counts one autocast region in (true) or out (false); leaving the outermost region
// clears the cache of casted weights, as PyTorch's context manager does.
Napi::Value SetAutocast(const Napi::CallbackInfo& info) {
  return Guarded(info, [&]() -> Napi::Value {
    auto env = info.Env();
    auto device = info[0].As<Napi::String>().Utf8Value();
    bool enabled = info[1].ToBoolean().Value();
    auto dtype = static_cast<at::ScalarType>(info[2].As<Napi::Number>().Int32Value());
    auto previous = Napi::Array::New(env, 2);
    if (device == "cpu") {
      previous.Set(0u, Napi::Boolean::New(env, at::autocast::is_cpu_enabled()));
      previous.Set(1u, Napi::Number::New(env, static_cast<int>(at::autocast::get_autocast_cpu_dtype())));
      at::autocast::set_cpu_enabled(enabled);
      at::autocast::set_autocast_cpu_dtype(dtype);
    } else if (device == "cuda") {
      previous.Set(0u, Napi::Boolean::New(env, at::autocast::is_enabled()));
      previous.Set(1u, Napi::Number::New(env, static_cast<int>(at::autocast::get_autocast_gpu_dtype())));
      at::autocast::set_enabled(enabled);
      at::autocast::set_autocast_gpu_dtype(dtype);
    } else {
      throw std::invalid_argument("autocast: device must be 'cpu' or 'cuda', got '" + device + "'");
    }
    if (info[3].ToBoolean().Value()) {
      at::autocast::increment_nesting();
    } else if (at::autocast::decrement_nesting() == 0) {
      at::autocast::clear_cache();
    }
    return previous;
  });
}

// Functions defined in JS. The JS side registers one dispatcher; forward and backward call it
// with (kind, id, tensors) and get tensors back. Both run synchronously on the thread that owns
// the JS environment: CPU autograd runs backward on the calling thread.
napi_env handlerEnv = nullptr;
Napi::FunctionReference* handler = nullptr;
std::thread::id handlerThread;

variable_list CallHandler(const char* kind, int64_t id, const variable_list& tensors) {
  if (handler == nullptr) throw std::runtime_error("custom function: no JS handler registered");
  if (std::this_thread::get_id() != handlerThread) {
    throw std::runtime_error("custom function: backward ran on a libtorch worker thread; JS " +
                             std::string("functions are supported only for CPU autograd"));
  }
  Napi::Env env(handlerEnv);
  Napi::HandleScope scope(env);
  Napi::Value result;
  try {
    result = handler->Call({Napi::String::New(env, kind),
                            Napi::Number::New(env, static_cast<double>(id)),
                            FromTensors(env, tensors)});
  } catch (const Napi::Error& e) {
    throw std::runtime_error(e.Message());
  }
  auto outputs = ToTensors(result, "custom function result", true);

  // The handles returned by the JS handler are handed over: release them now that they are read.
  auto array = result.As<Napi::Array>();
  for (uint32_t i = 0; i < array.Length(); i++) {
    auto item = array.Get(i);
    if (IsTensorHandle(item)) ReleaseHandle(env, item);
  }
  return outputs;
}

struct JsFunction : public torch::autograd::Function<JsFunction> {
  static variable_list forward(AutogradContext* ctx, at::TensorList inputs, int64_t id) {
    ctx->saved_data["id"] = id;
    return CallHandler("forward", id, inputs.vec());
  }

  static variable_list backward(AutogradContext* ctx, variable_list gradOutputs) {
    auto id = ctx->saved_data["id"].toInt();
    auto grads = CallHandler("backward", id, gradOutputs);
    grads.emplace_back();  // the id argument has no gradient
    return grads;
  }
};

Napi::Value SetFunctionHandler(const Napi::CallbackInfo& info) {
  return Guarded(info, [&]() -> Napi::Value {
    delete handler;
    handler = new Napi::FunctionReference(Napi::Persistent(info[0].As<Napi::Function>()));
    handlerEnv = info.Env();
    handlerThread = std::this_thread::get_id();
    return info.Env().Undefined();
  });
}

// applyFunction(id, inputs[]) -> outputs[]
Napi::Value ApplyFunction(const Napi::CallbackInfo& info) {
  return Guarded(info, [&]() -> Napi::Value {
    auto id = info[0].As<Napi::Number>().Int64Value();
    auto inputs = ToTensors(info[1], "applyFunction", false);
    auto outputs = JsFunction::apply(at::TensorList(inputs), id);
    return FromTensors(info.Env(), outputs);
  });
}

}  // namespace

void InitAutograd(Napi::Env env, Napi::Object exports) {
  exports.Set("backward", Napi::Function::New(env, Backward));
  exports.Set("autogradGrad", Napi::Function::New(env, Grad));
  exports.Set("getGrad", Napi::Function::New(env, GetGrad));
  exports.Set("setGrad", Napi::Function::New(env, SetGrad));
  exports.Set("setRequiresGrad", Napi::Function::New(env, SetRequiresGrad));
  exports.Set("isLeaf", Napi::Function::New(env, IsLeaf));
  exports.Set("setGradEnabled", Napi::Function::New(env, SetGradEnabled));
  exports.Set("isGradEnabled", Napi::Function::New(env, IsGradEnabled));
  exports.Set("setAutocast", Napi::Function::New(env, SetAutocast));
  exports.Set("setFunctionHandler", Napi::Function::New(env, SetFunctionHandler));
  exports.Set("applyFunction", Napi::Function::New(env, ApplyFunction));
}

}  // namespace groco
