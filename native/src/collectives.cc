// c10d process groups (Gloo over a TCP store) and the collectives the trainer needs.
#include "common.h"

#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <chrono>
#include <cstdlib>

namespace groco {
namespace {

struct GroupBox {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> group;
  std::chrono::milliseconds timeout;
};

struct WorkBox {
  c10::intrusive_ptr<c10d::Work> work;
  std::chrono::milliseconds timeout;
};

GroupBox& UnwrapGroup(const Napi::Value& value) {
  if (!value.IsExternal()) throw std::invalid_argument("expected a process group handle");
  auto* box = value.As<Napi::External<GroupBox>>().Data();
  if (!box->group) throw std::invalid_argument("process group was already destroyed");
  return *box;
}

std::vector<at::Tensor> TensorArray(const Napi::Value& value, const char* what) {
  auto array = value.As<Napi::Array>();
  std::vector<at::Tensor> out;
  for (uint32_t i = 0; i < array.Length(); i++) out.push_back(UnwrapTensor(array.Get(i), what));
  return out;
}

c10d::ReduceOp ToReduceOp(const std::string& name) {
  if (name == "sum") return c10d::ReduceOp::SUM;
  if (name == "max") return c10d::ReduceOp::MAX;
  if (name == "min") return c10d::ReduceOp::MIN;
  if (name == "product") return c10d::ReduceOp::PRODUCT;
  throw std::invalid_argument("allReduce: op must be sum, max, min or product, got '" + name + "'");
}

Napi::Value WrapWork(Napi::Env env, c10::intrusive_ptr<c10d::Work> work,
                     std::chrono::milliseconds timeout) {
  auto* box = new WorkBox{std::move(work), timeout};
  return Napi::External<WorkBox>::New(env, box, [](Napi::Env, WorkBox* b) { delete b; });
}

// newProcessGroup(host, port, rank, worldSize, timeoutMs)
Napi::Value NewProcessGroup(const Napi::CallbackInfo& info) {
  return Guarded(info, [&]() -> Napi::Value {
    auto host = info[0].As<Napi::String>().Utf8Value();
    auto port = info[1].As<Napi::Number>().Uint32Value();
    auto rank = info[2].As<Napi::Number>().Int32Value();
    auto world = info[3].As<Napi::Number>().Int32Value();
    auto timeout = std::chrono::milliseconds(info[4].As<Napi::Number>().Int64Value());

    c10d::TCPStoreOptions storeOptions;
    storeOptions.port = static_cast<uint16_t>(port);
    storeOptions.isServer = rank == 0;
    storeOptions.numWorkers = static_cast<size_t>(world);
    storeOptions.waitWorkers = true;
    storeOptions.timeout = timeout;
    auto tcp = c10::make_intrusive<c10d::TCPStore>(host, storeOptions);
    auto store = c10::make_intrusive<c10d::PrefixStore>("groco", tcp);

    auto options = c10d::ProcessGroupGloo::Options::create();
    options->timeout = timeout;
    const char* ifname = std::getenv("GLOO_SOCKET_IFNAME");
    if (ifname != nullptr && *ifname != '\0') {
      options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
    } else if (host == "127.0.0.1" || host == "localhost") {
      options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
    } else {
      options->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
    }
    auto group = c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, world, options);
    auto* box = new GroupBox{store, group, timeout};
    return Napi::External<GroupBox>::New(info.Env(), box,
                                         [](Napi::Env, GroupBox* b) { delete b; });
  });
}

Napi::Value DestroyProcessGroup(const Napi::CallbackInfo& info) {
  return Guarded(info, [&]() -> Napi::Value {
    auto& box = UnwrapGroup(info[0]);
    box.group.reset();
    box.store.reset();
    return info.Env().Undefined();
  });
}

// allReduce(group, tensors[], op, async) -> work handle when async, else undefined
Napi::Value AllReduce(const Napi::CallbackInfo& info) {
  return Guarded(info, [&]() -> Napi::Value {
    auto& box = UnwrapGroup(info[0]);
    auto tensors = TensorArray(info[1], "allReduce");
    c10d::AllreduceOptions options;
    options.reduceOp = ToReduceOp(info[2].As<Napi::String>().Utf8Value());
    options.timeout = box.timeout;
    auto work = box.group->allreduce(tensors, options);
    if (info[3].ToBoolean().Value()) return WrapWork(info.Env(), work, box.timeout);
    work->wait(box.timeout);
    return info.Env().Undefined();
  });
}

Napi::Value WaitWork(const Napi::CallbackInfo& info) {
  return Guarded(info, [&]() -> Napi::Value {
    auto* box = info[0].As<Napi::External<WorkBox>>().Data();
    if (box->work) {
      box->work->wait(box->timeout);
      box->work.reset();
    }
    return info.Env().Undefined();
  });
}

// allGather(group, tensor) -> tensors[] (one per rank)
Napi::Value AllGather(const Napi::CallbackInfo& info) {
  return Guarded(info, [&]() -> Napi::Value {
    auto env = info.Env();
    auto& box = UnwrapGroup(info[0]);
    auto input = UnwrapTensor(info[1], "allGather").contiguous();
    std::vector<std::vector<at::Tensor>> outputs(1);
    for (int i = 0; i < box.group->getSize(); i++) outputs[0].push_back(at::empty_like(input));
    std::vector<at::Tensor> inputs{input};
    c10d::AllgatherOptions options;
    options.timeout = box.timeout;
    box.group->allgather(outputs, inputs, options)->wait(box.timeout);
    auto out = Napi::Array::New(env, outputs[0].size());
    for (size_t i = 0; i < outputs[0].size(); i++) out.Set(i, WrapTensor(env, outputs[0][i]));
    return out;
  });
}

// broadcast(group, tensors[], root)
Napi::Value Broadcast(const Napi::CallbackInfo& info) {
  return Guarded(info, [&]() -> Napi::Value {
    auto& box = UnwrapGroup(info[0]);
    auto tensors = TensorArray(info[1], "broadcast");
    c10d::BroadcastOptions options;
    options.rootRank = info[2].As<Napi::Number>().Int32Value();
    options.timeout = box.timeout;
    box.group->broadcast(tensors, options)->wait(box.timeout);
    return info.Env().Undefined();
  });
}

Napi::Value Barrier(const Napi::CallbackInfo& info) {
  return Guarded(info, [&]() -> Napi::Value {
    auto& box = UnwrapGroup(info[0]);
    c10d::BarrierOptions options;
    options.timeout = box.timeout;
    box.group->barrier(options)->wait(box.timeout);
    return info.Env().Undefined();
  });
}

// Small key-value exchange through the store (used to agree on run names and to report failures).
Napi::Value StoreSet(const Napi::CallbackInfo& info) {
  return Guarded(info, [&]() -> Napi::Value {
    auto& box = UnwrapGroup(info[0]);
    auto value = info[2].As<Napi::String>().Utf8Value();
    box.store->set(info[1].As<Napi::String>().Utf8Value(),
                   std::vector<uint8_t>(value.begin(), value.end()));
    return info.Env().Undefined();
  });
}

Napi::Value StoreGet(const Napi::CallbackInfo& info) {
  return Guarded(info, [&]() -> Napi::Value {
    auto& box = UnwrapGroup(info[0]);
    auto bytes = box.store->get(info[1].As<Napi::String>().Utf8Value());
    return Napi::String::New(info.Env(), std::string(bytes.begin(), bytes.end()));
  });
}

}  // namespace

void InitCollectives(Napi::Env env, Napi::Object exports) {
  exports.Set("newProcessGroup", Napi::Function::New(env, NewProcessGroup));
  exports.Set("destroyProcessGroup", Napi::Function::New(env, DestroyProcessGroup));
  exports.Set("allReduce", Napi::Function::New(env, AllReduce));
  exports.Set("waitWork", Napi::Function::New(env, WaitWork));
  exports.Set("allGather", Napi::Function::New(env, AllGather));
  exports.Set("broadcast", Napi::Function::New(env, Broadcast));
  exports.Set("barrier", Napi::Function::New(env, Barrier));
  exports.Set("storeSet", Napi::Function::New(env, StoreSet));
  exports.Set("storeGet", Napi::Function::New(env, StoreGet));
}

}  // namespace groco
