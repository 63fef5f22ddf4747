// Report assembly: manifest, summary, compliance mapping, limitations, diff, PDF.
#include <fmt/format.h>
#include <signal.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "doc.h"
#include "mlaudit/reports/gates.h"
#include "mlaudit/reports/report.h"
#include "mlaudit/reports/sections.h"
#include "mlaudit/datasets/io.h"
#include "mlaudit/common/error.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace mlaudit::reports {

nlohmann::json parse_report(const std::string& text, const std::string& source) {
  datasets::require_utf8(text, source, "report");
  nlohmann::json report;
  try {
    report = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw InputError("report", fmt::format("{}: not valid JSON: {}", source, e.what()));
  }
  if (!report.is_object() || !report.contains("schema") || report["schema"] != kReportSchema)
    throw InputError("report", fmt::format("{}: not an mlaudit report (expected \"schema\": \"{}\")", source, kReportSchema));
  return report;
}


namespace {

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) {
      auto p = line.find(':');
      if (p != std::string::npos) return line.substr(line.find_first_not_of(" \t", p + 1));
    }
  }
  return "unknown";
}

std::string gpu_model() {
  // NVIDIA's driver exposes one folder per GPU here; no CUDA call needed.
  std::error_code ec;
  fs::path dir = "/proc/driver/nvidia/gpus";
  if (!fs::exists(dir, ec)) return "none detected";
  std::string out;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    std::ifstream in(e.path() / "information");
    std::string line;
    while (std::getline(in, line))
      if (line.rfind("Model:", 0) == 0) out += (out.empty() ? "" : ", ") + line.substr(line.find_first_not_of(" \t", 6));
  }
  return out.empty() ? "none detected" : out;
}

std::string os_name() {
  std::ifstream in("/etc/os-release");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("PRETTY_NAME=", 0) == 0) {
      std::string v = line.substr(12);
      if (v.size() >= 2 && v.front() == '"') v = v.substr(1, v.size() - 2);
      return v;
    }
  struct utsname u;
  if (uname(&u) == 0) return std::string(u.sysname) + " " + u.release;
  return "unknown";
}

const json& arr(const json& j, const char* key) {
  static const json empty = json::array();
  return j.is_object() && j.contains(key) && j[key].is_array() ? j[key] : empty;
}

}  // namespace

json make_manifest(const std::string& tool_version, const std::string& git_commit, int threads, uint64_t seed) {
  json m;
  m["tool_version"] = tool_version;
  m["git_commit"] = git_commit;
  std::time_t now = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
  m["date"] = buf;
  char host[256] = {0};
  gethostname(host, sizeof host - 1);
  m["host"] = host;
  m["os"] = os_name();
  m["cpu"] = cpu_model();
  m["cpu_cores"] = std::thread::hardware_concurrency();
  m["gpu"] = gpu_model();
  m["threads"] = threads > 0 ? json(threads) : json(fmt::format("all ({})", std::thread::hardware_concurrency()));
  m["seed"] = seed;
  return m;
}

json compliance_mapping(const json& report) {
  // Which clauses each report section gives evidence for. The references are
  // to the text of: Regulation (EU) 2024/1689 (AI Act) Art. 15 (accuracy,
  // robustness, cybersecurity) and Annex IV (technical documentation: 2(g)
  // validation and testing, 3 performance for groups of persons); NIST AI RMF
  // 1.0 MEASURE 2.3 (performance), 2.5 (validity and reliability), 2.7
  // (security and resilience), 2.9 (explainability), 2.11 (fairness and
  // bias); ISO/IEC 24029-2:2023 (formal methods for robustness); ISO/IEC TR
  // 24027:2021 (bias in AI systems). Art. 15(5) names data and model poisoning
  // and confidentiality attacks; NIST MEASURE 2.10 covers privacy risk.
  json out = json::array();
  // one row per section kind, its title and references registered with the kind (sections/<kind>.cpp)
  for (const SectionKindDef* r : section_kinds()) {
    std::string measured;
    int ran = 0, failed = 0;
    for (const auto& s : arr(report, "sections")) {
      if (s.value("kind", "") != r->name) continue;
      ++ran;
      if (s.value("status", "") != "ok") ++failed;
      measured += (measured.empty() ? "" : " | ") + s.value("id", std::string()) + ": " + detail::section_headline(s);
    }
    std::string status = ran == 0 ? "not measured" : failed == ran ? "not available" : failed ? "partly measured" : "measured";
    out.push_back({{"section", r->compliance_title},
                   {"kind", r->name},
                   {"references", r->references},
                   {"measured", ran == 0 ? "not measured in this audit" : measured},
                   {"status", status}});
  }
  return out;
}

void finalize_report(json& report) {
  int passed = 0, failed = 0, warned = 0, errors = 0;
  for (const auto& g : arr(report, "gates")) {
    std::string st = g.value("status", "error");
    if (st == "pass") ++passed;
    else if (st == "error") ++errors;
    else if (g.value("severity", "error") == "warning") ++warned;
    else ++failed;
  }
  int sections_failed = 0;
  std::vector<std::string> failed_ids;
  for (const auto& s : arr(report, "sections"))
    if (s.value("status", "") != "ok") ++sections_failed, failed_ids.push_back(s.value("id", std::string()));
  // Exit code: a gate whose metric is missing, or a section that did not
  // complete, is an input/run error (2); else a failed error-severity gate is 1.
  int code = (errors > 0 || sections_failed > 0) ? 2 : failed > 0 ? 1 : 0;
  report["summary"] = {{"verdict", code == 0 ? "PASS" : code == 1 ? "FAIL" : "ERROR"},
                       {"exit_code", code},
                       {"gates_total", arr(report, "gates").size()},
                       {"gates_passed", passed},
                       {"gates_failed", failed},
                       {"gates_warned", warned},
                       {"gates_errors", errors},
                       {"sections_total", arr(report, "sections").size()},
                       {"sections_failed", sections_failed}};
  report["compliance"] = compliance_mapping(report);
  json lim = json::array();
  if (report.contains("system"))
    for (const auto& l : arr(report["system"], "limitations")) lim.push_back(l);
  std::set<std::string> kinds;
  for (const auto& s : arr(report, "sections")) kinds.insert(s.value("kind", std::string()));
  // each kind that ran states its limitation (registered with the kind, in report order)
  for (const SectionKindDef* k : section_kinds())
    if (kinds.count(k->name) && *k->limitation) lim.push_back(k->limitation);
  for (const auto& id : failed_ids) lim.push_back("Section '" + id + "' did not complete; its results are not available.");
  lim.push_back("Results hold for the data, models and parameters in the run manifest; other inputs were not evaluated.");
  report["limitations"] = lim;
}

json diff_reports(const json& previous, const json& current, const std::string& previous_path) {
  json d;
  d["previous"] = previous_path;
  d["previous_date"] = previous.contains("manifest") ? previous["manifest"].value("date", std::string()) : "";
  d["gates"] = json::array();
  std::map<std::string, json> old_gates;
  for (const auto& g : arr(previous, "gates")) old_gates[g.value("name", std::string())] = g;
  std::set<std::string> seen;
  for (const auto& g : arr(current, "gates")) {
    std::string name = g.value("name", std::string());
    seen.insert(name);
    json rec = {{"name", name}, {"new_status", g.value("status", "")}, {"new_measured", g.value("measured", json())}};
    auto it = old_gates.find(name);
    if (it != old_gates.end()) {
      rec["old_status"] = it->second.value("status", "");
      rec["old_measured"] = it->second.value("measured", json());
      if (rec["old_measured"].is_number() && rec["new_measured"].is_number())
        rec["delta"] = rec["new_measured"].get<double>() - rec["old_measured"].get<double>();
    } else {
      rec["old_status"] = "new gate";
    }
    d["gates"].push_back(rec);
  }
  for (const auto& [name, g] : old_gates)
    if (!seen.count(name))
      d["gates"].push_back({{"name", name}, {"old_status", g.value("status", "")}, {"new_status", "removed"},
                            {"old_measured", g.value("measured", json())}});
  d["sections"] = json::array();
  std::map<std::string, std::string> old_sections;
  for (const auto& s : arr(previous, "sections")) old_sections[s.value("id", std::string())] = detail::section_headline(s);
  for (const auto& s : arr(current, "sections")) {
    std::string id = s.value("id", std::string());
    std::string now = detail::section_headline(s);
    auto it = old_sections.find(id);
    if (it == old_sections.end()) d["sections"].push_back({{"id", id}, {"old", "not run"}, {"new", now}});
    else if (it->second != now) d["sections"].push_back({{"id", id}, {"old", it->second}, {"new", now}});
  }
  d["inputs_changed"] = json::array();
  std::map<std::string, std::string> old_hash;
  if (previous.contains("manifest"))
    for (const auto& h : arr(previous["manifest"], "inputs"))
      if (h.contains("sha256") && h["sha256"].is_string()) old_hash[h.value("role", std::string())] = h["sha256"];
  if (current.contains("manifest"))
    for (const auto& h : arr(current["manifest"], "inputs")) {
      auto it = old_hash.find(h.value("role", std::string()));
      if (it != old_hash.end() && h.contains("sha256") && h["sha256"].is_string() && h["sha256"] != it->second)
        d["inputs_changed"].push_back({{"role", h["role"]}, {"old_sha256", it->second}, {"new_sha256", h["sha256"]}});
    }
  return d;
}

int report_exit_code(const json& report) {
  if (report.contains("summary") && report["summary"].contains("exit_code") && report["summary"]["exit_code"].is_number_integer())
    return report["summary"]["exit_code"].get<int>();
  return gates_exit_code(arr(report, "gates"));
}

std::string find_pdf_renderer() {
  const char* path = std::getenv("PATH");
  std::string p = path ? path : "/usr/bin:/bin";
  for (const char* name : {"wkhtmltopdf", "chromium", "chromium-browser", "google-chrome", "google-chrome-stable"}) {
    size_t start = 0;
    while (start <= p.size()) {
      size_t end = p.find(':', start);
      if (end == std::string::npos) end = p.size();
      fs::path cand = fs::path(p.substr(start, end - start)) / name;
      if (access(cand.c_str(), X_OK) == 0) return cand.string();
      start = end + 1;
    }
  }
  return {};
}

namespace {

// Runs `argv` with its output silenced; waits at most `limit_ms`. Empty on success, else why not.
std::string run_renderer(const std::vector<std::string>& argv_in, const std::string& tmp, int limit_ms) {
  std::vector<std::string> argv = argv_in;
  const std::string& renderer = argv[0];
  pid_t pid = fork();
  if (pid < 0) return "report.pdf not written: cannot start " + renderer;
  if (pid == 0) {
    // child: silence the renderer's own chatter
    FILE* devnull = std::fopen("/dev/null", "w");
    if (devnull) {
      dup2(fileno(devnull), 1);
      dup2(fileno(devnull), 2);
    }
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  // A hung browser must not hang the audit.
  int status = 0;
  for (int waited = 0;; waited += 100) {
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) break;
    if (waited > limit_ms) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      std::error_code ec;
      fs::remove(tmp, ec);
      return fmt::format("report.pdf not written: {} did not finish within {} s", renderer, limit_ms / 1000);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  std::error_code ec;
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || !fs::exists(tmp, ec) || fs::file_size(tmp, ec) == 0) {
    fs::remove(tmp, ec);
    return fmt::format("report.pdf not written: {} failed (exit status {})", renderer, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
  }
  return {};
}

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// The body of indirect object `id` ("12 0 obj ... endobj"), or empty.
std::string pdf_object(const std::string& pdf, const std::string& id) {
  const std::string tag = id + " 0 obj";
  for (size_t at = pdf.find(tag); at != std::string::npos; at = pdf.find(tag, at + 1)) {
    if (at > 0 && std::isdigit(static_cast<unsigned char>(pdf[at - 1]))) continue;  // "112 0 obj" is not "12 0 obj"
    size_t end = pdf.find("endobj", at);
    if (end == std::string::npos) return {};
    return pdf.substr(at + tag.size(), end - at - tag.size());
  }
  return {};
}

// "/Key 12 0 R" -> "12"
std::string pdf_ref(const std::string& dict, const std::string& key) {
  size_t at = dict.find(key + " ");
  if (at == std::string::npos) return {};
  at += key.size() + 1;
  size_t end = at;
  while (end < dict.size() && std::isdigit(static_cast<unsigned char>(dict[end]))) ++end;
  return dict.substr(at, end - at);
}

// Page objects in reading order, walking the /Pages tree (/Kids may hold nested trees).
void pdf_pages(const std::string& pdf, const std::string& node, std::vector<std::string>& pages, int depth) {
  if (depth > 32) return;
  std::string body = pdf_object(pdf, node);
  size_t kids = body.find("/Kids");
  if (kids == std::string::npos) {
    pages.push_back(node);
    return;
  }
  size_t open = body.find('[', kids), close = body.find(']', kids);
  if (open == std::string::npos || close == std::string::npos) return;
  std::istringstream in(body.substr(open + 1, close - open - 1));
  std::string id, gen, r;
  while (in >> id >> gen >> r) pdf_pages(pdf, id, pages, depth + 1);
}

// Page (1-based) of each named destination: Chromium's PDF (Skia) writes one per element id
// that a link points to, in the catalog's /Dests dictionary ("/name [pageobj 0 R /XYZ ...]").
std::map<std::string, int> pdf_destination_pages(const std::string& pdf) {
  std::map<std::string, int> out;
  size_t cat = pdf.find("/Type /Catalog");
  if (cat == std::string::npos) return out;
  std::string catalog = pdf.substr(cat, pdf.find(">>", cat) - cat);
  std::vector<std::string> pages;
  pdf_pages(pdf, pdf_ref(catalog, "/Pages"), pages, 0);
  std::map<std::string, int> page_of;
  for (size_t i = 0; i < pages.size(); ++i) page_of[pages[i]] = int(i) + 1;
  std::string dests = pdf_object(pdf, pdf_ref(catalog, "/Dests"));
  for (size_t at = dests.find('/'); at != std::string::npos; at = dests.find('/', at + 1)) {
    size_t name_end = dests.find_first_of(" [", at + 1);
    size_t open = dests.find('[', at);
    if (name_end == std::string::npos || open == std::string::npos) break;
    std::string name = dests.substr(at + 1, name_end - at - 1);
    std::istringstream in(dests.substr(open + 1, 32));
    std::string page;
    in >> page;
    if (page_of.count(page)) out[name] = page_of[page];
    at = dests.find(']', open);
    if (at == std::string::npos) break;
  }
  return out;
}

// The HTML with each table-of-contents entry's page filled in; empty when none was found.
std::string with_toc_pages(const std::string& html, const std::map<std::string, int>& pages) {
  std::string out = html;
  int filled = 0;
  for (const auto& [anchor, page] : pages) {
    const std::string slot = "data-anchor=\"" + anchor + "\"></span>";
    if (size_t at = out.find(slot); at != std::string::npos) {
      out.replace(at, slot.size(), fmt::format("data-anchor=\"{}\">{}</span>", anchor, page));
      ++filled;
    }
  }
  return filled ? out : std::string();
}

// content="..." of <meta name="NAME">, unescaped enough for a command-line argument.
std::string html_meta(const std::string& html, const std::string& name) {
  size_t at = html.find("<meta name=\"" + name + "\" content=\"");
  if (at == std::string::npos) return {};
  at = html.find("content=\"", at) + 9;
  std::string v = html.substr(at, html.find('"', at) - at);
  for (const auto& [ent, ch] : std::vector<std::pair<std::string, std::string>>{
           {"&lt;", "<"}, {"&gt;", ">"}, {"&quot;", "\""}, {"&apos;", "'"}, {"&amp;", "&"}})
    for (size_t p; (p = v.find(ent)) != std::string::npos;) v.replace(p, ent.size(), ch);
  return v;
}

}  // namespace

std::string html_to_pdf(const std::string& renderer, const std::string& html_path, const std::string& pdf_path, Paper paper) {
  std::string tmp = pdf_path + ".tmp." + std::to_string(getpid()) + ".pdf";
  std::string abs_html = fs::absolute(html_path).string();
  const bool wk = fs::path(renderer).filename() == "wkhtmltopdf";
  std::error_code ec;
  if (wk) {
    // wkhtmltopdf (Qt WebKit) has no CSS page-margin boxes: its own header and footer options
    // give the same running header and "Page n of N"; the page size is passed explicitly.
    std::string header = html_meta(slurp(abs_html), "mlaudit-running-header");
    std::vector<std::string> argv = {renderer, "--quiet", "--disable-javascript", "--enable-local-file-access",
                                     "--page-size", paper == Paper::Letter ? "Letter" : "A4",
                                     "--margin-top", "18mm", "--margin-bottom", "18mm", "--margin-left", "14mm", "--margin-right", "14mm",
                                     "--header-left", header, "--header-font-size", "8", "--footer-right", "Page [page] of [topage]",
                                     "--footer-font-size", "8", "--outline", abs_html, tmp};
    if (std::string why = run_renderer(argv, tmp, 120000); !why.empty()) return why;
  } else {
    // Chromium: @page size and margin boxes from the HTML's CSS; the document outline
    // (PDF bookmarks) from the headings. Pass 1 lays out the pages; the table of contents
    // then gets each section's page from the PDF's named destinations and pass 2 prints it.
    auto chromium = [&](const std::string& html) {
      return std::vector<std::string>{renderer, "--headless", "--disable-gpu", "--no-sandbox", "--no-pdf-header-footer",
                                      "--generate-pdf-document-outline", "--print-to-pdf=" + tmp, "file://" + html};
    };
    if (std::string why = run_renderer(chromium(abs_html), tmp, 120000); !why.empty()) return why;
    const std::string html = slurp(abs_html);
    const std::string numbered = with_toc_pages(html, pdf_destination_pages(slurp(tmp)));
    if (!numbered.empty()) {
      // the page numbers sit in a fixed-width slot, so pass 2 breaks the pages as pass 1 did
      const std::string html2 = abs_html + ".toc." + std::to_string(getpid()) + ".html";
      std::ofstream(html2, std::ios::binary) << numbered;
      const std::string first = tmp + ".pass1";
      fs::rename(tmp, first, ec);
      std::string why = run_renderer(chromium(html2), tmp, 120000);
      fs::remove(html2, ec);
      if (!why.empty()) fs::rename(first, tmp, ec);  // keep pass 1: a PDF without TOC page numbers beats none
      else fs::remove(first, ec);
    }
  }
  fs::rename(tmp, pdf_path, ec);
  if (ec) return "report.pdf not written: " + ec.message();
  return {};
}

}  // namespace mlaudit::reports
