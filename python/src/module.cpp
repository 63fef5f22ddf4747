// mlaudit._core: the Python module's native half (python/mlaudit/__init__.py is the API).
// It links the same libraries and the same command objects as the mlaudit executable, so a
// command run from Python is the CLI's own code: same options, same checks, same numbers.
// Long calls release the GIL; Ctrl-C reaches them through the progress observer
// (engine/progress.h), which also feeds the Python progress callback (tqdm bars).
#include <omp.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "command.h"
#include "docgen.h"
#include "mlaudit/engine/error.h"
#include "mlaudit/engine/graph.h"
#include "mlaudit/engine/progress.h"
#include "mlaudit/engine/session.h"

namespace py = pybind11;
using namespace mlaudit;

namespace {

PyObject* g_input_error = nullptr;        // mlaudit.InputError (a ValueError)
PyObject* g_unsupported_error = nullptr;  // mlaudit.UnsupportedError (an InputError)

// While a call runs without the GIL: the Python progress callback (may be None) and Ctrl-C.
// One process-wide observer (installed at import) dispatches each update to the call running
// on the updating thread, so calls from several Python threads never see each other's
// callbacks; updates from OpenMP workers, or inside a parallel region, are skipped (the next one
// from the calling thread comes soon).
std::mutex g_calls_mutex;
std::map<std::thread::id, PyObject*> g_calls;  // thread -> its progress callback (borrowed; may be None)

void observe(const std::string& label, const std::string& unit, int64_t done, int64_t total, bool end) {
  PyObject* cb = nullptr;
  {
    std::lock_guard<std::mutex> lock(g_calls_mutex);
    auto it = g_calls.find(std::this_thread::get_id());
    if (it == g_calls.end()) return;
    cb = it->second;
  }
  if (omp_in_parallel()) return;
  py::gil_scoped_acquire gil;
  if (cb && cb != Py_None) {
    PyObject* r = PyObject_CallFunction(cb, "ssLLO", label.c_str(), unit.c_str(), (long long)done, (long long)total,
                                        end ? Py_True : Py_False);
    if (r) {
      Py_DECREF(r);
    } else {
      // Ctrl-C may land while the callback runs; any other error in a progress bar never stops an audit
      const bool interrupted = PyErr_ExceptionMatches(PyExc_KeyboardInterrupt);
      PyErr_Clear();
      if (interrupted && !end) throw engine::Interrupted();
    }
  }
  if (!end && PyErr_CheckSignals() != 0) {  // acts on the main thread only, as Python's signals do
    PyErr_Clear();
    throw engine::Interrupted();
  }
}

class ObserverScope {
 public:
  explicit ObserverScope(PyObject* callback) {
    std::lock_guard<std::mutex> lock(g_calls_mutex);
    g_calls[std::this_thread::get_id()] = callback;
  }
  ~ObserverScope() {
    std::lock_guard<std::mutex> lock(g_calls_mutex);
    g_calls.erase(std::this_thread::get_id());
  }
  ObserverScope(const ObserverScope&) = delete;
  ObserverScope& operator=(const ObserverScope&) = delete;
};

// Commands share process-wide state (the thread count, the audit's signal handling), so one
// runs at a time; a second Python thread's call waits (without the GIL) for the first.
std::mutex g_command_mutex;

// The exception being handled (in a catch block) as the module's Python exception, with the
// CLI's one-line text; the GIL must be held.
[[noreturn]] void raise_python(const std::string& command) {
  PyObject* type = PyExc_RuntimeError;
  std::string message;
  try {
    throw;
  } catch (const UnsupportedError& e) {
    type = g_unsupported_error, message = cli::error_text(command, e);
  } catch (const InputError& e) {
    type = g_input_error, message = cli::error_text(command, e);
  } catch (const engine::Interrupted&) {
    PyErr_SetNone(PyExc_KeyboardInterrupt);
    throw py::error_already_set();
  } catch (const std::bad_alloc&) {
    type = PyExc_MemoryError, message = "out of memory";
  } catch (const std::exception& e) {
    message = std::string("mlaudit internal error: ") + e.what();
  }
  PyErr_SetString(type, message.c_str());
  throw py::error_already_set();
}

// Runs f without the GIL (Ctrl-C and the progress callback through the observer); errors
// become the module's exceptions.
template <class F>
auto guarded(const std::string& command, PyObject* progress, F&& f) -> decltype(f()) {
  std::exception_ptr error;
  {
    py::gil_scoped_release release;
    try {
      ObserverScope observer(progress);
      return f();
    } catch (...) {
      error = std::current_exception();
    }
  }
  try {
    std::rethrow_exception(error);
  } catch (...) {
    raise_python(command);
  }
}

// Runs f with the GIL held (argument conversion); errors become the module's exceptions.
template <class F>
auto translated(const std::string& command, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const py::error_already_set&) {
    throw;
  } catch (...) {
    raise_python(command);
  }
}

// Arrays cross the boundary through the buffer protocol (PEP 3118) only, never through
// pybind11's NumPy internals, whose view of NumPy's structs is tied to the NumPy it was built
// for: a module built with Debian's pybind11 2.10 then works with NumPy 1.x and 2.x alike.
// The Python side (mlaudit/__init__.py) hands over C-contiguous arrays of the input's dtype and
// wraps results with numpy.asarray (no copy).

// The PEP 3118 format of a dtype, and whether a buffer's format names it ('l' and 'q' are both
// 64-bit integers on Linux x86-64).
bool format_matches(const std::string& f, engine::DType t) {
  std::string c = f;
  if (!c.empty() && (c[0] == '<' || c[0] == '=' || c[0] == '@')) c = c.substr(1);
  switch (t) {
    case engine::DType::Float32: return c == "f";
    case engine::DType::Float64: return c == "d";
    case engine::DType::Int32: return c == "i";
    case engine::DType::Int64: return c == "l" || c == "q";
    case engine::DType::UInt8: return c == "B";
    case engine::DType::Bool: return c == "?";
  }
  return false;
}
const char* format_of(engine::DType t) {
  switch (t) {
    case engine::DType::Float32: return "f";
    case engine::DType::Float64: return "d";
    case engine::DType::Int32: return "i";
    case engine::DType::Int64: return "q";
    case engine::DType::UInt8: return "B";
    case engine::DType::Bool: return "?";
  }
  return "f";
}

// An engine tensor exported through the buffer protocol; numpy.asarray(buffer) shares its storage.
struct Buffer {
  engine::Tensor t;
};

// A C-contiguous buffer of the graph input's dtype as an engine tensor: no copy when it is
// 64-byte aligned (the engine's kernels may use aligned loads), else one copy. `views` keeps
// the buffers alive (and their memory borrowed) for the call.
engine::Tensor to_tensor(const py::handle& obj, engine::DType want, const std::string& what,
                         std::vector<py::buffer_info>& views) {
  if (!PyObject_CheckBuffer(obj.ptr())) throw InputError("python", what + ": expected an array");
  py::buffer_info info = py::reinterpret_borrow<py::buffer>(obj).request();
  if (!format_matches(info.format, want) || info.itemsize != ssize_t(engine::dtype_size(want)))
    throw InputError("python", what + ": expected " + engine::dtype_name(want) + " values (buffer format '" +
                                   info.format + "')");
  engine::Shape shape(info.shape.begin(), info.shape.end());
  ssize_t stride = info.itemsize;
  for (ssize_t k = info.ndim - 1; k >= 0; --k) {
    if (info.shape[size_t(k)] > 1 && info.strides[size_t(k)] != stride)
      throw InputError("python", what + ": the array is not C-contiguous");
    stride *= info.shape[size_t(k)];
  }
  auto* p = static_cast<uint8_t*>(info.ptr);
  const size_t bytes = size_t(engine::shape_numel(shape)) * engine::dtype_size(want);
  engine::Tensor t;
  if (reinterpret_cast<uintptr_t>(p) % 64 == 0 && bytes > 0) {
    // borrowed: the deleter does nothing, `views` holds the memory for the call
    t = engine::Tensor::wrap(want, shape, std::shared_ptr<uint8_t>(p, [](uint8_t*) {}));
  } else {
    t = engine::Tensor::uninitialized(want, shape);
    if (bytes > 0) std::memcpy(t.raw(), p, bytes);
  }
  views.push_back(std::move(info));
  return t;
}

// A result for numpy.asarray: the tensor's own storage, or a copy when the storage is borrowed
// from one of the inputs (an Identity path), whose owner may go.
py::object to_buffer(const engine::Tensor& t, const std::vector<engine::Tensor>& inputs) {
  for (const auto& in : inputs)
    if (in.storage() == t.storage()) return py::cast(Buffer{t.clone()});
  return py::cast(Buffer{t});
}

py::object shape_to_py(const engine::Shape& s) {
  py::list out;
  for (int64_t d : s) {
    if (d < 0) out.append(py::none());
    else out.append(py::int_(d));
  }
  return py::tuple(out);
}

// (name, dtype, shape) per graph input or output; None for a dynamic dimension.
py::list value_infos(const std::vector<engine::ValueInfo>& values) {
  py::list out;
  for (const auto& v : values) out.append(py::make_tuple(v.name, engine::dtype_name(v.dtype), shape_to_py(v.shape)));
  return out;
}

struct PyModel {
  std::shared_ptr<engine::Session> session;
  std::string source;
};

engine::SessionOptions session_options(const std::string& device, const std::string& output, int threads) {
  engine::SessionOptions o;
  o.device = engine::parse_device(device);
  o.output = output;
  o.threads = threads;
  return o;
}

std::vector<engine::Tensor> model_inputs(const PyModel& m, const py::sequence& arrays,
                                         std::vector<py::buffer_info>& keep) {
  const auto& ins = m.session->inputs();
  if (arrays.size() != ins.size())
    throw InputError("python", m.source + ": the model has " + std::to_string(ins.size()) + " input(s), " +
                                   std::to_string(arrays.size()) + " given");
  std::vector<engine::Tensor> xs;
  for (size_t k = 0; k < ins.size(); ++k)
    xs.push_back(to_tensor(arrays[k], ins[k].dtype, m.source + ": input '" + ins[k].name + "'", keep));
  return xs;
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "mlaudit's native module: the engine and the commands of the mlaudit executable";
  g_input_error = PyErr_NewExceptionWithDoc("mlaudit.InputError",
                                            "Bad input: a malformed file, a wrong shape, an unknown option value "
                                            "(the CLI's exit code 2). The message is the CLI's one line.",
                                            PyExc_ValueError, nullptr);
  g_unsupported_error = PyErr_NewExceptionWithDoc("mlaudit.UnsupportedError",
                                                  "Valid input this build cannot handle (an operator, an opset).",
                                                  g_input_error, nullptr);
  m.attr("InputError") = py::handle(g_input_error);
  engine::set_progress_observer(observe);
  m.attr("UnsupportedError") = py::handle(g_unsupported_error);

  m.def("version_text", [](bool json) { return cli::version_text(json); }, py::arg("json") = false,
        "mlaudit --version's text (or JSON).");
  m.def("commands", [] {
    std::vector<std::pair<std::string, std::string>> out;
    for (const auto& c : cli::commands()) out.emplace_back(c.name, c.summary);
    return out;
  });
  m.def(
      "run_command",
      [](const std::string& name, const std::vector<std::string>& args, int threads, const std::string& device,
         const std::string& output, bool quiet, py::object progress) {
        return guarded(name, progress.ptr(), [&] {
          std::lock_guard<std::mutex> one_at_a_time(g_command_mutex);
          for (const auto& a : args)
            if (!engine::is_utf8(a)) throw InputError("cli", "an argument is not UTF-8");
          cli::GlobalOptions g;
          g.threads = threads;
          g.device = engine::parse_device(device);
          g.model_output = output;
          g.quiet = quiet;
          engine::set_num_threads(threads);
          return cli::run_command(name, args, g);
        });
      },
      py::arg("name"), py::arg("args"), py::arg("threads") = 0, py::arg("device") = "cpu", py::arg("output") = "",
      py::arg("quiet") = true, py::arg("progress") = py::none(),
      "Run an mlaudit command in this process, as `mlaudit [globals] NAME ARGS...` would; returns its exit code.");

  py::class_<Buffer>(m, "_Buffer", py::buffer_protocol()).def_buffer([](Buffer& b) -> py::buffer_info {
    std::vector<ssize_t> shape(b.t.shape().begin(), b.t.shape().end()), strides(shape.size());
    ssize_t stride = ssize_t(engine::dtype_size(b.t.dtype()));
    for (size_t k = shape.size(); k-- > 0;) {
      strides[k] = stride;
      stride *= shape[k];
    }
    return py::buffer_info(b.t.raw(), ssize_t(engine::dtype_size(b.t.dtype())), format_of(b.t.dtype()),
                           ssize_t(shape.size()), shape, strides);
  });

  py::class_<PyModel>(m, "_Session")
      .def(py::init([](const std::string& path, const std::string& device, const std::string& output, int threads) {
             return guarded("model", nullptr, [&] {
               engine::set_num_threads(threads);
               return PyModel{std::shared_ptr<engine::Session>(
                                  engine::Session::load(path, session_options(device, output, threads))),
                              path};
             });
           }),
           py::arg("path"), py::arg("device") = "cpu", py::arg("output") = "", py::arg("threads") = 0)
      .def_static(
          "from_bytes",
          [](py::bytes data, const std::string& source, const std::string& device, const std::string& output,
             int threads) {
            std::string bytes = data;  // copied while the GIL is held
            return guarded("model", nullptr, [&] {
              engine::set_num_threads(threads);
              engine::Graph g = engine::parse_onnx(bytes.data(), bytes.size(), source);
              return PyModel{std::make_shared<engine::Session>(std::move(g), session_options(device, output, threads)),
                             source};
            });
          },
          py::arg("data"), py::arg("source"), py::arg("device") = "cpu", py::arg("output") = "",
          py::arg("threads") = 0)
      .def_property_readonly("inputs", [](const PyModel& m) { return value_infos(m.session->inputs()); })
      .def_property_readonly("outputs", [](const PyModel& m) { return value_infos(m.session->outputs()); })
      .def_property_readonly("audited_output", [](const PyModel& m) { return m.session->audited_output().name; })
      .def_property_readonly("backend", [](const PyModel& m) { return m.session->backend_name(); })
      .def("run",
           [](const PyModel& m, const py::sequence& arrays) {
             std::vector<py::buffer_info> keep;
             std::vector<engine::Tensor> xs = translated("model", [&] { return model_inputs(m, arrays, keep); });
             std::vector<engine::Tensor> held = xs;  // a second reference: no in-place writes into NumPy memory
             std::vector<engine::Tensor> ys = guarded("model", nullptr, [&] { return m.session->run(xs); });
             py::list out;
             for (const auto& y : ys) out.append(to_buffer(y, held));
             return out;
           })
      .def("gradient", [](const PyModel& m, const py::sequence& arrays, const py::handle& seed) {
        std::vector<py::buffer_info> keep;
        std::vector<engine::Tensor> xs = translated("model", [&] { return model_inputs(m, arrays, keep); });
        std::vector<engine::Tensor> held = xs;
        std::vector<engine::Tensor> seeds(m.session->outputs().size());
        seeds[m.session->audited_index()] = translated(
            "model", [&] { return to_tensor(seed, engine::DType::Float32, m.source + ": seed", keep); });
        std::vector<engine::Tensor> outputs;
        std::vector<engine::Tensor> gs = guarded("model", nullptr, [&] {
          m.session->require_gradients("gradient()");
          return m.session->gradient(xs, seeds, &outputs);
        });
        py::list out;
        for (const auto& g : gs) out.append(g.empty() ? py::object(py::none()) : to_buffer(g, held));
        return out;
      });
}
