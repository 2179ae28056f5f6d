// Registration of the groco addon's entry points, one Init per source file.
#include "common.h"

namespace groco {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  InitTensor(env, exports);
  InitOps(env, exports);
  InitAutograd(env, exports);
  InitCollectives(env, exports);
  exports.Set("torchVersion", Napi::String::New(env, TORCH_VERSION));
#ifdef GROCO_WITH_CUDA
  exports.Set("builtWithCuda", Napi::Boolean::New(env, true));
#else
  exports.Set("builtWithCuda", Napi::Boolean::New(env, false));
#endif
  return exports;
}

NODE_API_MODULE(groco_native, Init)

}  // namespace groco
