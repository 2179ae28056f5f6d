// Tensor handles: creation from JS memory, reading back, metadata, disposal, generators, threads.
#include "common.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>

#include <cstring>

namespace groco {

std::atomic<int64_t> liveTensors{0};

namespace {

// Only a handle that spans its whole storage reports it to V8: views (slices, transposes,
// expansions) share memory someone else already reported, and counting them again would make
// the collector run for memory that does not exist.
int64_t NativeBytes(const at::Tensor& t) {
  if (!t.defined() || !t.has_storage()) return 0;
  auto bytes = static_cast<int64_t>(t.numel()) * static_cast<int64_t>(t.element_size());
  if (t.storage_offset() != 0 || bytes != static_cast<int64_t>(t.storage().nbytes())) return 0;
  return bytes;
}

void ReleaseBox(Napi::Env env, TensorBox* box) {
  if (box->tensor.defined()) {
    box->tensor = at::Tensor();
    liveTensors--;
  }
  if (box->reported != 0) {
    Napi::MemoryManagement::AdjustExternalMemory(env, -box->reported);
    box->reported = 0;
  }
}

std::vector<int64_t> ToShape(const Napi::Value& value, const char* what) {
  if (!value.IsArray()) {
    throw std::invalid_argument(std::string(what) + ": expected an array of sizes");
  }
  auto array = value.As<Napi::Array>();
  std::vector<int64_t> shape(array.Length());
  for (uint32_t i = 0; i < array.Length(); i++) {
    shape[i] = array.Get(i).As<Napi::Number>().Int64Value();
  }
  return shape;
}

Napi::Array FromShape(Napi::Env env, c10::IntArrayRef sizes) {
  auto array = Napi::Array::New(env, sizes.size());
  for (size_t i = 0; i < sizes.size(); i++) array.Set(i, Napi::Number::New(env, sizes[i]));
  return array;
}

Napi::Value FromBuffer(const Napi::CallbackInfo& info) {
  return Guarded(info, [&]() -> Napi::Value {
    auto env = info.Env();
    auto dtype = static_cast<at::ScalarType>(info[1].As<Napi::Number>().Int32Value());
    auto shape = ToShape(info[2], "fromBuffer");
    auto tensor = at::empty(shape, at::TensorOptions().dtype(dtype));
    size_t nbytes = tensor.numel() * tensor.element_size();

    const uint8_t* data = nullptr;
    size_t length = 0;
    if (info[0].IsTypedArray()) {
      auto typed = info[0].As<Napi::TypedArray>();
      auto buffer = typed.ArrayBuffer();
      data = static_cast<const uint8_t*>(buffer.Data()) + typed.ByteOffset();
      length = typed.ByteLength();
    } else if (info[0].IsArrayBuffer()) {
      auto buffer = info[0].As<Napi::ArrayBuffer>();
      data = static_cast<const uint8_t*>(buffer.Data());
      length = buffer.ByteLength();
    } else {
      throw std::invalid_argument("fromBuffer: expected a typed array or ArrayBuffer");
    }
    if (length != nbytes) {
      throw std::invalid_argument("fromBuffer: " + std::to_string(length) +
                                  " bytes given for a tensor of " + std::to_string(nbytes));
    }
    if (nbytes > 0) std::memcpy(tensor.data_ptr(), data, nbytes);

    if (info.Length() > 3 && info[3].IsString()) {
      auto device = c10::Device(info[3].As<Napi::String>().Utf8Value());
      if (!device.is_cpu()) tensor = tensor.to(device);
    }
    return WrapTensor(env, tensor);
  });
}

Napi::Value ToBuffer(const Napi::CallbackInfo& info) {
  return Guarded(info, [&]() -> Napi::Value {
    auto tensor = UnwrapTensor(info[0], "toBuffer").detach().to(at::kCPU).contiguous();
    size_t nbytes = tensor.numel() * tensor.element_size();
    auto buffer = Napi::ArrayBuffer::New(info.Env(), nbytes);
    if (nbytes > 0) std::memcpy(buffer.Data(), tensor.data_ptr(), nbytes);
    return buffer;
  });
}

// [dtype code, shape, device, requiresGrad] in one crossing.
Napi::Value Meta(const Napi::CallbackInfo& info) {
  return Guarded(info, [&]() -> Napi::Value {
    auto env = info.Env();
    const auto& t = UnwrapTensor(info[0], "meta");
    auto out = Napi::Array::New(env, 4);
    out.Set(0u, Napi::Number::New(env, static_cast<int>(t.scalar_type())));
    out.Set(1u, FromShape(env, t.sizes()));
    out.Set(2u, Napi::String::New(env, t.device().str()));
    out.Set(3u, Napi::Boolean::New(env, t.requires_grad()));
    return out;
  });
}

Napi::Value Shape(const Napi::CallbackInfo& info) {
  return Guarded(info, [&]() -> Napi::Value {
    return FromShape(info.Env(), UnwrapTensor(info[0], "shape").sizes());
  });
}

Napi::Value Strides(const Napi::CallbackInfo& info) {
  return Guarded(info, [&]() -> Napi::Value {
    return FromShape(info.Env(), UnwrapTensor(info[0], "strides").strides());
  });
}

Napi::Value StorageOffset(const Napi::CallbackInfo& info) {
  return Guarded(info, [&]() -> Napi::Value {
    return Napi::Number::New(info.Env(), UnwrapTensor(info[0], "storageOffset").storage_offset());
  });
}

Napi::Value Dtype(const Napi::CallbackInfo& info) {
  return Guarded(info, [&]() -> Napi::Value {
    auto type = UnwrapTensor(info[0], "dtype").scalar_type();
    return Napi::Number::New(info.Env(), static_cast<int>(type));
  });
}

Napi::Value Item(const Napi::CallbackInfo& info) {
  return Guarded(info, [&]() -> Napi::Value {
    auto scalar = UnwrapTensor(info[0], "item").item();
    if (scalar.isBoolean()) return Napi::Boolean::New(info.Env(), scalar.toBool());
    return Napi::Number::New(info.Env(), scalar.toDouble());
  });
}

Napi::Value Free(const Napi::CallbackInfo& info) {
  return Guarded(info, [&]() -> Napi::Value {
    if (!IsTensorHandle(info[0])) throw std::invalid_argument("free: expected a tensor handle");
    ReleaseBox(info.Env(), info[0].As<Napi::External<TensorBox>>().Data());
    return info.Env().Undefined();
  });
}

Napi::Value LiveCount(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(liveTensors.load()));
}

Napi::Value SetNumThreads(const Napi::CallbackInfo& info) {
  return Guarded(info, [&]() -> Napi::Value {
    at::set_num_threads(info[0].As<Napi::Number>().Int32Value());
    return info.Env().Undefined();
  });
}

Napi::Value GetNumThreads(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), at::get_num_threads());
}

Napi::Value ManualSeed(const Napi::CallbackInfo& info) {
  return Guarded(info, [&]() -> Napi::Value {
    torch::manual_seed(static_cast<uint64_t>(info[0].As<Napi::Number>().Int64Value()));
    return info.Env().Undefined();
  });
}

Napi::Value CudaDeviceCount(const Napi::CallbackInfo& info) {
  return Guarded(info, [&]() -> Napi::Value {
    return Napi::Number::New(info.Env(), static_cast<double>(torch::cuda::device_count()));
  });
}

// Generators: an owned copy of the c10 handle; the default CPU generator is shared, not copied.
Napi::Value NewGenerator(const Napi::CallbackInfo& info) {
  return Guarded(info, [&]() -> Napi::Value {
    auto seed = static_cast<uint64_t>(info[0].As<Napi::Number>().Int64Value());
    auto* gen = new at::Generator(at::make_generator<at::CPUGeneratorImpl>(seed));
    return Napi::External<at::Generator>::New(info.Env(), gen,
                                              [](Napi::Env, at::Generator* g) { delete g; });
  });
}

Napi::Value DefaultGenerator(const Napi::CallbackInfo& info) {
  return Guarded(info, [&]() -> Napi::Value {
    auto* gen = new at::Generator(at::detail::getDefaultCPUGenerator());
    return Napi::External<at::Generator>::New(info.Env(), gen,
                                              [](Napi::Env, at::Generator* g) { delete g; });
  });
}

Napi::Value GeneratorGetState(const Napi::CallbackInfo& info) {
  return Guarded(info, [&]() -> Napi::Value {
    auto& gen = UnwrapGenerator(info[0], "generatorState");
    std::lock_guard<std::mutex> lock(gen.mutex());
    return WrapTensor(info.Env(), gen.get_state());
  });
}

Napi::Value GeneratorSetState(const Napi::CallbackInfo& info) {
  return Guarded(info, [&]() -> Napi::Value {
    auto& gen = UnwrapGenerator(info[0], "setGeneratorState");
    const auto& state = UnwrapTensor(info[1], "setGeneratorState");
    std::lock_guard<std::mutex> lock(gen.mutex());
    gen.set_state(state);
    return info.Env().Undefined();
  });
}

Napi::Value GeneratorSeed(const Napi::CallbackInfo& info) {
  return Guarded(info, [&]() -> Napi::Value {
    auto& gen = UnwrapGenerator(info[0], "generatorSeed");
    std::lock_guard<std::mutex> lock(gen.mutex());
    gen.set_current_seed(static_cast<uint64_t>(info[1].As<Napi::Number>().Int64Value()));
    return info.Env().Undefined();
  });
}

}  // namespace

bool IsTensorHandle(const Napi::Value& value) {
  if (!value.IsExternal()) return false;
  napi_type_tag tag = {0x67726f636f000001ULL, 0x74656e736f720001ULL};
  bool tagged = false;
  napi_check_object_type_tag(value.Env(), value, &tag, &tagged);
  return tagged;
}

void ReleaseHandle(Napi::Env env, const Napi::Value& value) {
  ReleaseBox(env, value.As<Napi::External<TensorBox>>().Data());
}

Napi::Value WrapTensor(Napi::Env env, at::Tensor tensor) {
  if (!tensor.defined()) return env.Null();
  auto* box = new TensorBox{std::move(tensor), 0};
  box->reported = NativeBytes(box->tensor);
  liveTensors++;
  if (box->reported != 0) Napi::MemoryManagement::AdjustExternalMemory(env, box->reported);
  auto external = Napi::External<TensorBox>::New(env, box, [](Napi::Env env, TensorBox* b) {
    ReleaseBox(env, b);
    delete b;
  });
  napi_type_tag tag = {0x67726f636f000001ULL, 0x74656e736f720001ULL};
  napi_type_tag_object(env, external, &tag);
  return external;
}

at::Tensor& UnwrapTensor(const Napi::Value& value, const char* what) {
  if (!IsTensorHandle(value)) {
    throw std::invalid_argument(std::string(what) + ": expected a tensor handle");
  }
  auto* box = value.As<Napi::External<TensorBox>>().Data();
  if (!box->tensor.defined()) {
    throw std::invalid_argument(std::string(what) + ": tensor was already disposed");
  }
  return box->tensor;
}

at::Generator& UnwrapGenerator(const Napi::Value& value, const char* what) {
  if (!value.IsExternal() || IsTensorHandle(value)) {
    throw std::invalid_argument(std::string(what) + ": expected a generator handle");
  }
  return *value.As<Napi::External<at::Generator>>().Data();
}

void InitTensor(Napi::Env env, Napi::Object exports) {
  exports.Set("fromBuffer", Napi::Function::New(env, FromBuffer));
  exports.Set("toBuffer", Napi::Function::New(env, ToBuffer));
  exports.Set("meta", Napi::Function::New(env, Meta));
  exports.Set("shape", Napi::Function::New(env, Shape));
  exports.Set("strides", Napi::Function::New(env, Strides));
  exports.Set("storageOffset", Napi::Function::New(env, StorageOffset));
  exports.Set("dtype", Napi::Function::New(env, Dtype));
  exports.Set("item", Napi::Function::New(env, Item));
  exports.Set("free", Napi::Function::New(env, Free));
  exports.Set("liveCount", Napi::Function::New(env, LiveCount));
  exports.Set("setNumThreads", Napi::Function::New(env, SetNumThreads));
  exports.Set("getNumThreads", Napi::Function::New(env, GetNumThreads));
  exports.Set("manualSeed", Napi::Function::New(env, ManualSeed));
  exports.Set("cudaDeviceCount", Napi::Function::New(env, CudaDeviceCount));
  exports.Set("newGenerator", Napi::Function::New(env, NewGenerator));
  exports.Set("defaultGenerator", Napi::Function::New(env, DefaultGenerator));
  exports.Set("generatorGetState", Napi::Function::New(env, GeneratorGetState));
  exports.Set("generatorSetState", Napi::Function::New(env, GeneratorSetState));
  exports.Set("generatorSeed", Napi::Function::New(env, GeneratorSeed));
}

}  // namespace groco
