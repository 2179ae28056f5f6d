{
  "targets": [
    {
      "target_name": "groco_native",
      "sources": [
        "native/src/addon.cc",
        "native/src/tensor.cc",
        "native/src/ops.cc",
        "native/src/autograd.cc",
        "native/src/collectives.cc"
      ],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")",
        "<!@(node native/torch_flags.mjs include)"
      ],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS"],
      "cflags!": ["-fno-exceptions", "-fno-rtti"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++17"],
      "cflags_cc": [
        "-std=c++17", "-fexceptions", "-frtti", "-O2", "-Wno-unused-parameter",
        "<!@(node native/torch_flags.mjs cflags)"
      ],
      "libraries": ["<!@(node native/torch_flags.mjs ldflags)", "<!@(node native/torch_flags.mjs libs)"]
    }
  ]
}
