//! Generates the CRI's gRPC code from `proto/runtime/v1/api.proto` (k8s.io/cri-api v0.36.3,
//! Kubernetes 1.36), with a pure-Rust protobuf compiler: nothing but cargo is needed.

fn main() {
    let proto = "proto/runtime/v1/api.proto";
    println!("cargo:rerun-if-changed={proto}");
    let fds = protox::compile([proto], ["proto"]).expect("parsing the CRI api.proto");
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // RPCs peapod does not serve answer Unimplemented.
        .generate_default_stubs(true)
        .compile_fds(fds)
        .expect("generating the CRI gRPC code");
}
