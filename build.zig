// build.zig - the only build of ringress (zig 0.11).
//
//   zig build            ringress and the test backend into zig-out/bin
//   zig build test       unit tests, then integration tests (Criterion)
//   zig build demo       two demo backends and ringress on examples/demo
//   zig build bench      wrk against ringress, HAProxy and nginx
//
// One static library per source folder enforces the dependency rules of
// docs/architecture.md: core links only liburing and llhttp; k8s sees core's
// snapshot builder and libcurl/cJSON/libyaml; only src/main.c sees all.
const std = @import("std");

const cflags = [_][]const u8{ "-std=gnu11", "-Wall", "-Wextra", "-Werror", "-D_GNU_SOURCE", "-fno-omit-frame-pointer" };
const llhttp_srcs = [_][]const u8{ "/usr/share/llhttp/api.c", "/usr/share/llhttp/http.c", "/usr/share/llhttp/llhttp.c" };
const llhttp_flags = [_][]const u8{ "-std=gnu11", "-D_GNU_SOURCE", "-w" };

/// Every *.c file under dir (recursively), sorted, as paths relative to the build root.
fn cFiles(b: *std.Build, dir: []const u8) []const []const u8 {
    var list = std.ArrayList([]const u8).init(b.allocator);
    var d = b.build_root.handle.openIterableDir(dir, .{}) catch return list.items;
    defer d.close();
    var walker = d.walk(b.allocator) catch @panic("oom");
    defer walker.deinit();
    while (walker.next() catch null) |e| {
        if (e.kind == .file and std.mem.endsWith(u8, e.path, ".c"))
            list.append(b.pathJoin(&.{ dir, e.path })) catch @panic("oom");
    }
    std.mem.sort([]const u8, list.items, {}, struct {
        fn lt(_: void, a: []const u8, c: []const u8) bool {
            return std.mem.lessThan(u8, a, c);
        }
    }.lt);
    return list.items;
}

/// -Dwolfssl-prefix: a wolfSSL installed under PATH (./bootstrap.sh --fast-crypto), used
/// instead of the system one: PATH/include before the system headers, PATH/lib before the
/// system libraries, and PATH/lib as an rpath so the binary loads that libwolfssl.so.
var wolfssl_prefix: ?[]const u8 = null;

fn addIncludes(c: *std.Build.Step.Compile) void {
    if (wolfssl_prefix) |p| {
        const b = c.step.owner;
        c.addIncludePath(.{ .cwd_relative = b.pathJoin(&.{ p, "include" }) });
        if (c.kind == .exe or c.kind == .@"test" or (c.kind == .lib and c.linkage == .dynamic)) {
            c.addLibraryPath(.{ .cwd_relative = b.pathJoin(&.{ p, "lib" }) });
            c.addRPath(.{ .cwd_relative = b.pathJoin(&.{ p, "lib" }) });
        }
    }
    c.addIncludePath(.{ .path = "src" });
    c.addSystemIncludePath(.{ .path = "/usr/share/include/llhttp" });
    c.linkLibC();
}

const syslibs = [_][]const u8{ "uring", "cjson", "yaml", "curl-gnutls", "wolfssl", "pthread" };

/// The ringress binary and its libraries (core, k8s, tls: one static library per
/// folder), built with one optimisation mode. Artifacts are built only when a
/// step needs them, so the ReleaseFast copy for `zig build bench` costs nothing
/// elsewhere.
const Ringress = struct { exe: *std.Build.Step.Compile, libs: []const *std.Build.Step.Compile };

fn addRingress(b: *std.Build, target: std.zig.CrossTarget, optimize: std.builtin.OptimizeMode) Ringress {
    // core: data plane. liburing + llhttp only.
    const core = b.addStaticLibrary(.{ .name = "ringress-core", .target = target, .optimize = optimize });
    addIncludes(core);
    core.addCSourceFiles(cFiles(b, "src/core"), &cflags);
    core.addCSourceFiles(&llhttp_srcs, &llhttp_flags);

    // k8s: control plane. Sees core's snapshot builder; libcurl, cJSON, libyaml.
    const k8s = b.addStaticLibrary(.{ .name = "ringress-k8s", .target = target, .optimize = optimize });
    addIncludes(k8s);
    k8s.addSystemIncludePath(.{ .path = "/usr/include/cjson" });
    k8s.addCSourceFiles(cFiles(b, "src/k8s"), &cflags);

    // tls: wolfSSL termination behind core's transport hooks.
    var libs_list = std.ArrayList(*std.Build.Step.Compile).init(b.allocator);
    libs_list.append(k8s) catch @panic("oom");
    const tls_srcs = cFiles(b, "src/tls");
    if (tls_srcs.len > 0) {
        const tls = b.addStaticLibrary(.{ .name = "ringress-tls", .target = target, .optimize = optimize });
        addIncludes(tls);
        tls.addCSourceFiles(tls_srcs, &cflags);
        libs_list.append(tls) catch @panic("oom");
    }
    libs_list.append(core) catch @panic("oom");
    const libs = libs_list.items;

    const exe = b.addExecutable(.{ .name = "ringress", .target = target, .optimize = optimize });
    addIncludes(exe);
    exe.addCSourceFiles(&.{"src/main.c"}, &cflags);
    for (libs) |l| exe.linkLibrary(l);
    for (syslibs) |l| exe.linkSystemLibrary(l);
    return .{ .exe = exe, .libs = libs };
}

/// bench/micro.c linked against one build of the libraries.
fn addMicro(b: *std.Build, target: std.zig.CrossTarget, optimize: std.builtin.OptimizeMode, libs: []const *std.Build.Step.Compile) *std.Build.Step.Compile {
    const micro = b.addExecutable(.{ .name = "ringress-micro", .target = target, .optimize = optimize });
    addIncludes(micro);
    micro.addCSourceFiles(&.{"bench/micro.c"}, &cflags);
    for (libs) |l| micro.linkLibrary(l);
    for (syslibs) |l| micro.linkSystemLibrary(l);
    return micro;
}

pub fn build(b: *std.Build) void {
    const target = b.standardTargetOptions(.{});
    const optimize = b.option(std.builtin.OptimizeMode, "optimize", "Optimisation mode (default ReleaseSafe)") orelse .ReleaseSafe;
    wolfssl_prefix = b.option([]const u8, "wolfssl-prefix", "Use the wolfSSL installed under this prefix (./bootstrap.sh --fast-crypto) instead of the system one");

    const main = addRingress(b, target, optimize);
    const libs = main.libs;
    b.installArtifact(main.exe);

    // The project's own test backend (echo server, demo backend).
    const echo = b.addExecutable(.{ .name = "ringress-echo", .target = target, .optimize = optimize });
    addIncludes(echo);
    echo.addCSourceFiles(cFiles(b, "tests/support/echo"), &cflags);
    echo.addCSourceFiles(&llhttp_srcs, &llhttp_flags);
    echo.linkSystemLibrary("pthread");
    b.installArtifact(echo);

    // A WebSocket echo backend of the project's own (tunnel tests).
    const ws_srcs = cFiles(b, "tests/support/ws");
    if (ws_srcs.len > 0) {
        const ws = b.addExecutable(.{ .name = "ringress-ws", .target = target, .optimize = optimize });
        addIncludes(ws);
        ws.addCSourceFiles(ws_srcs, &cflags);
        ws.addCSourceFiles(&llhttp_srcs, &llhttp_flags);
        ws.linkSystemLibrary("pthread");
        b.installArtifact(ws);
    }

    // An LD_PRELOAD library that makes allocations fail on shard threads
    // (tests of the data plane's out-of-memory paths).
    const failmalloc = b.addSharedLibrary(.{ .name = "failmalloc", .target = target, .optimize = optimize });
    failmalloc.addCSourceFile(.{ .file = .{ .path = "tests/support/failmalloc.c" }, .flags = &cflags });
    failmalloc.linkLibC();
    const failmalloc_install = b.addInstallArtifact(failmalloc, .{ .dest_dir = .{ .override = .{ .custom = "tests" } } });

    // Tests: one Criterion executable for unit tests, one for integration.
    const test_step = b.step("test", "Run unit and integration tests");
    const unit = b.addExecutable(.{ .name = "unit-tests", .target = target, .optimize = optimize });
    addIncludes(unit);
    unit.addSystemIncludePath(.{ .path = "/usr/include/cjson" });
    unit.addCSourceFiles(cFiles(b, "tests/unit"), &cflags);
    for (libs) |l| unit.linkLibrary(l);
    for (syslibs) |l| unit.linkSystemLibrary(l);
    unit.linkSystemLibrary("criterion");
    unit.link_gc_sections = false; // Criterion finds tests in an ELF section
    const unit_install = b.addInstallArtifact(unit, .{ .dest_dir = .{ .override = .{ .custom = "tests" } } });
    const run_unit = b.addSystemCommand(&.{ b.getInstallPath(.{ .custom = "tests" }, "unit-tests"), "--jobs=2" });
    run_unit.step.dependOn(&unit_install.step);
    run_unit.setEnvironmentVariable("RINGRESS_ROOT", b.build_root.path orelse ".");

    const integ = b.addExecutable(.{ .name = "integration-tests", .target = target, .optimize = optimize });
    addIncludes(integ);
    integ.addCSourceFiles(cFiles(b, "tests/integration"), &cflags);
    integ.linkSystemLibrary("criterion");
    integ.linkSystemLibrary("pthread");
    integ.link_gc_sections = false;
    const integ_install = b.addInstallArtifact(integ, .{ .dest_dir = .{ .override = .{ .custom = "tests" } } });
    // Integration tests share ports and CPUs: run them one at a time.
    const run_integ = b.addSystemCommand(&.{ b.getInstallPath(.{ .custom = "tests" }, "integration-tests"), "--jobs=1" });
    run_integ.step.dependOn(&integ_install.step);
    run_integ.step.dependOn(b.getInstallStep());
    run_integ.step.dependOn(&run_unit.step);
    run_integ.setEnvironmentVariable("RINGRESS_ROOT", b.build_root.path orelse ".");
    run_integ.setEnvironmentVariable("RINGRESS_BIN", b.getInstallPath(.bin, "ringress"));
    run_integ.setEnvironmentVariable("RINGRESS_ECHO", b.getInstallPath(.bin, "ringress-echo"));
    run_integ.setEnvironmentVariable("RINGRESS_WS", b.getInstallPath(.bin, "ringress-ws"));
    // bench_test runs `bench/run.sh --quick` so that the harness never rots.
    const test_micro = b.addInstallArtifact(addMicro(b, target, optimize, libs), .{ .dest_dir = .{ .override = .{ .custom = "tests" } } });
    run_integ.step.dependOn(&test_micro.step);
    run_integ.step.dependOn(&failmalloc_install.step);
    run_integ.setEnvironmentVariable("RINGRESS_FAILMALLOC", b.getInstallPath(.{ .custom = "tests" }, "libfailmalloc.so"));
    run_integ.setEnvironmentVariable("RINGRESS_MICRO", b.getInstallPath(.{ .custom = "tests" }, "ringress-micro"));
    test_step.dependOn(&run_integ.step);

    const unit_step = b.step("unit", "Run unit tests only");
    unit_step.dependOn(&run_unit.step);

    const demo = b.addSystemCommand(&.{ "bash", "examples/demo/run.sh" });
    demo.step.dependOn(b.getInstallStep());
    demo.setEnvironmentVariable("RINGRESS_BIN", b.getInstallPath(.bin, "ringress"));
    demo.setEnvironmentVariable("RINGRESS_ECHO", b.getInstallPath(.bin, "ringress-echo"));
    b.step("demo", "Run ringress on examples/demo with two demo backends").dependOn(&demo.step);

    // The benchmark always measures ReleaseFast builds (zig-out/bench/), whatever
    // -Doptimize says: ringress and the micro-benchmarks of bench/micro.c.
    const fast = addRingress(b, target, .ReleaseFast);
    const fast_install = b.addInstallArtifact(fast.exe, .{ .dest_dir = .{ .override = .{ .custom = "bench" } } });
    const micro = addMicro(b, target, .ReleaseFast, fast.libs);
    const micro_install = b.addInstallArtifact(micro, .{ .dest_dir = .{ .override = .{ .custom = "bench" } } });
    const bench = b.addSystemCommand(&.{ "bash", "bench/run.sh" });
    bench.step.dependOn(b.getInstallStep());
    bench.step.dependOn(&fast_install.step);
    bench.step.dependOn(&micro_install.step);
    if (b.args) |a| bench.addArgs(a);
    bench.setEnvironmentVariable("RINGRESS_BIN", b.getInstallPath(.{ .custom = "bench" }, "ringress"));
    bench.setEnvironmentVariable("RINGRESS_MICRO", b.getInstallPath(.{ .custom = "bench" }, "ringress-micro"));
    bench.setEnvironmentVariable("RINGRESS_ECHO", b.getInstallPath(.bin, "ringress-echo"));
    b.step("bench", "Benchmark ringress against HAProxy and nginx (bench/run.sh)").dependOn(&bench.step);
}
