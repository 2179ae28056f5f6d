// Shared declarations of the groco addon: tensor handles and the error boundary.
#pragma once

#include <napi.h>
#include <torch/torch.h>

#include <atomic>
#include <string>

namespace groco {

// A JS handle owns one reference to a libtorch tensor. dispose() drops it early; the finalizer is
// only the safety net. `reported` is what was announced to V8 as external memory.
struct TensorBox {
  at::Tensor tensor;
  int64_t reported = 0;
};

extern std::atomic<int64_t> liveTensors;

Napi::Value WrapTensor(Napi::Env env, at::Tensor tensor);
at::Tensor& UnwrapTensor(const Napi::Value& value, const char* what);
bool IsTensorHandle(const Napi::Value& value);
void ReleaseHandle(Napi::Env env, const Napi::Value& value);

at::Generator& UnwrapGenerator(const Napi::Value& value, const char* what);

// Every entry point runs its body through this: libtorch's c10::Error and any other C++ exception
// become a JS Error carrying libtorch's own message (without its C++ backtrace).
template <typename F>
Napi::Value Guarded(const Napi::CallbackInfo& info, F&& body) {
  try {
    return body();
  } catch (const Napi::Error&) {
    throw;
  } catch (const c10::Error& e) {
    throw Napi::Error::New(info.Env(), e.what_without_backtrace());
  } catch (const std::exception& e) {
    throw Napi::Error::New(info.Env(), e.what());
  }
}

void InitTensor(Napi::Env env, Napi::Object exports);
void InitOps(Napi::Env env, Napi::Object exports);
void InitAutograd(Napi::Env env, Napi::Object exports);
void InitCollectives(Napi::Env env, Napi::Object exports);

}  // namespace groco
