#pragma once
// Error types shared by every mlaudit module. The CLI maps InputError and
// UnsupportedError to exit code 2 (one line on stderr) and anything else to 3.
#include <stdexcept>
#include <string>

#include "mlaudit/common/utf8.h"

namespace mlaudit {

/// Base class: carries the module name ("engine", "verify", ...) and a message. Bytes of
/// the message that are not UTF-8 (a value quoted from a file) are escaped as \xE7, so every
/// message can be printed and stored in a result JSON.
class Error : public std::runtime_error {
 public:
  Error(std::string module, const std::string& message)
      : std::runtime_error(engine::escape_invalid_utf8(module + ": " + message)), module_(std::move(module)) {}
  const std::string& module() const { return module_; }

 private:
  std::string module_;
};

/// Bad user input: malformed file, wrong shape, bad option value. Exit code 2.
class InputError : public Error {
 public:
  using Error::Error;
};

/// Valid input that this build cannot handle (unknown op, opset). Exit code 2.
class UnsupportedError : public InputError {
 public:
  using InputError::InputError;
};

/// A bad value of one named parameter of a library call ("eps must be >= 0, got -1"): the
/// message names the parameter as the library's API spells it. The CLI (cli::run_command)
/// words it with the command's flag instead ("--eps must be >= 0, got -1"). Exit code 2.
class ParameterError : public InputError {
 public:
  /// `rest` follows the parameter's name: ParameterError("robustness", "eps", " must be >= 0").
  ParameterError(const std::string& module, std::string parameter, std::string rest)
      : InputError(module, parameter + rest), parameter_(std::move(parameter)), rest_(std::move(rest)) {}
  const std::string& parameter() const { return parameter_; }
  const std::string& rest() const { return rest_; }

 private:
  std::string parameter_;
  std::string rest_;
};

}  // namespace mlaudit
