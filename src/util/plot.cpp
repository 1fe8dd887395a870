// plot.cpp — see plot.h.
#include "util/plot.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>

#include "util/atomic_file.h"
#include "util/error.h"

namespace seek::plot {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
// Matplotlib's "tab10": distinct, and readable on white.
const char* const kPalette[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};

std::string escape(const std::string& s) {
  std::string r;
  r.reserve(s.size());
  for (char ch : s) {
    switch (ch) {
      case '&': r += "&amp;"; break;
      case '<': r += "&lt;"; break;
      case '>': r += "&gt;"; break;
      case '"': r += "&quot;"; break;
      case '\'': r += "&apos;"; break;
      default:
        // XML 1.0 allows no control characters but tab and newline.
        r += (static_cast<unsigned char>(ch) < 0x20 && ch != '\t' && ch != '\n') ? '?' : ch;
    }
  }
  return r;
}

// A tick label: as many decimals as the step needs, %g for very large or small magnitudes.
std::string tick_label(double v, double step) {
  if (std::fabs(v) < std::fabs(step) * 1e-9) v = 0;
  const double a = std::fabs(v);
  if (a >= 1e7 || (a > 0 && a < 1e-4)) return strfmt("%.3g", v);
  const int decimals = step >= 1 ? 0 : std::min(8, int(std::ceil(-std::log10(step) - 1e-9)));
  return strfmt("%.*f", decimals, v);
}

// A point is drawn when both coordinates are finite (and y > 0 on a log axis).
bool drawable(double x, double y, bool log_y) { return std::isfinite(x) && std::isfinite(y) && (!log_y || y > 0); }

// One chart's elements, its top edge at y = `top` of the document.
void render_chart(const Chart& c, int top, std::ostringstream& o) {
  const std::string who = "chart \"" + c.title + "\"";
  if (c.series.empty()) throw Error(who + ": no series to draw");
  double xlo = INFINITY, xhi = -INFINITY, ylo = INFINITY, yhi = -INFINITY;
  size_t longest_name = 0;
  for (const Series& s : c.series) {
    if (s.x.size() != s.y.size())
      throw Error(strfmt("%s: series \"%s\": x has %zu values, y has %zu", who.c_str(), s.name.c_str(), s.x.size(),
                         s.y.size()));
    for (size_t i = 0; i < s.x.size(); ++i) {
      if (!drawable(s.x[i], s.y[i], c.log_y)) continue;
      const double y = c.log_y ? std::log10(s.y[i]) : s.y[i];
      xlo = std::min(xlo, s.x[i]), xhi = std::max(xhi, s.x[i]);
      ylo = std::min(ylo, y), yhi = std::max(yhi, y);
    }
    longest_name = std::max(longest_name, s.name.size());
  }
  if (!std::isfinite(xlo))
    throw Error(who + ": nothing to draw (no series has a point with finite x and y" + (c.log_y ? " > 0)" : ")"));
  if (c.width < 200 || c.height < 150) throw Error(strfmt("%s: %dx%d pixels is too small (at least 200x150)", who.c_str(), c.width, c.height));

  const std::vector<double> xt = nice_ticks(xlo, xhi);
  std::vector<double> yt;  // in axis units (log10 of y on a log axis)
  std::vector<std::string> ylabels;
  if (c.log_y) {
    for (double t : log_ticks(std::pow(10.0, ylo), std::pow(10.0, yhi))) {
      yt.push_back(std::log10(t));
      ylabels.push_back(strfmt("%g", t));
    }
  } else {
    yt = nice_ticks(ylo, yhi);
    if (std::isfinite(c.y_min) && ylo >= c.y_min && yt.front() < c.y_min) {
      const double step = yt[1] - yt[0];
      yt.erase(yt.begin(), std::find_if(yt.begin(), yt.end(), [&](double t) { return t >= c.y_min; }));
      if (yt.empty() || yt.front() > c.y_min) yt.insert(yt.begin(), c.y_min);
      if (yt.size() < 2) yt.push_back(yt.back() + step);
    }
    for (double t : yt) ylabels.push_back(tick_label(t, yt.back() - yt[yt.size() - 2]));
  }
  const double ax0 = xt.front(), ax1 = xt.back(), ay0 = yt.front(), ay1 = yt.back();

  const int legend_w = std::min(c.width / 2, int(std::max<size_t>(110, longest_name * 7 + 44)));
  const double left = 68, right = c.width - legend_w - 10, ptop = top + 36, bottom = top + c.height - 46;
  auto px = [&](double x) { return left + (x - ax0) / (ax1 - ax0) * (right - left); };
  auto py = [&](double y) { return bottom - (y - ay0) / (ay1 - ay0) * (bottom - ptop); };

  o << strfmt("<g class=\"chart\">\n<text x=\"%.1f\" y=\"%d\" font-size=\"15\" text-anchor=\"middle\" font-weight=\"bold\">%s</text>\n",
              (left + right) / 2, top + 22, escape(c.title).c_str());
  // Grid, ticks and tick labels.
  o << "<g stroke=\"#e0e0e0\" stroke-width=\"1\">\n";
  for (double t : xt) o << strfmt("<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n", px(t), ptop, px(t), bottom);
  for (double t : yt) o << strfmt("<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n", left, py(t), right, py(t));
  o << "</g>\n";
  o << strfmt("<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"#404040\"/>\n", left, ptop,
              right - left, bottom - ptop);
  o << "<g font-size=\"11\" fill=\"#303030\">\n";
  for (double t : xt)
    o << strfmt("<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n", px(t), bottom + 15,
                escape(tick_label(t, xt[1] - xt[0])).c_str());
  for (size_t i = 0; i < yt.size(); ++i)
    o << strfmt("<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n", left - 6, py(yt[i]) + 4,
                escape(ylabels[i]).c_str());
  o << "</g>\n";
  o << strfmt("<text x=\"%.1f\" y=\"%.1f\" font-size=\"12\" text-anchor=\"middle\">%s</text>\n", (left + right) / 2,
              bottom + 36, escape(c.x_label).c_str());
  o << strfmt("<text x=\"16\" y=\"%.1f\" font-size=\"12\" text-anchor=\"middle\" transform=\"rotate(-90 16 %.1f)\">%s%s</text>\n",
              (ptop + bottom) / 2, (ptop + bottom) / 2, escape(c.y_label).c_str(), c.log_y ? " (log)" : "");

  // Series: one polyline per run of drawable points; a point alone between gaps is a dot.
  for (size_t k = 0; k < c.series.size(); ++k) {
    const Series& s = c.series[k];
    const std::string color = escape(s.color.empty() ? kPalette[k % std::size(kPalette)] : s.color);
    o << strfmt("<g class=\"series\" fill=\"none\" stroke=\"%s\" stroke-width=\"1.6\"%s>\n<title>%s</title>\n", color.c_str(),
                s.dashed ? " stroke-dasharray=\"6,4\"" : "", escape(s.name).c_str());
    std::vector<std::pair<double, double>> run;
    auto flush = [&] {
      if (run.size() == 1) {
        o << strfmt("<circle cx=\"%.1f\" cy=\"%.1f\" r=\"2.5\" fill=\"%s\" stroke=\"none\"/>\n", run[0].first, run[0].second,
                    color.c_str());
      } else if (run.size() > 1) {
        o << "<polyline points=\"";
        for (size_t i = 0; i < run.size(); ++i) o << (i ? " " : "") << strfmt("%.1f,%.1f", run[i].first, run[i].second);
        o << "\"/>\n";
      }
      run.clear();
    };
    for (size_t i = 0; i < s.x.size(); ++i) {
      if (!drawable(s.x[i], s.y[i], c.log_y)) {
        flush();
        continue;
      }
      run.emplace_back(px(s.x[i]), py(c.log_y ? std::log10(s.y[i]) : s.y[i]));
    }
    flush();
    o << "</g>\n";
    // Legend entry.
    const double ly = ptop + 8 + 18 * double(k);
    o << strfmt("<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"2\"%s/>\n", right + 12, ly,
                right + 34, ly, color.c_str(), s.dashed ? " stroke-dasharray=\"6,4\"" : "");
    o << strfmt("<text x=\"%.1f\" y=\"%.1f\" font-size=\"12\">%s</text>\n", right + 40, ly + 4, escape(s.name).c_str());
  }
  o << "</g>\n";
}

void flatten(const nlohmann::json& j, const std::string& prefix, std::map<std::string, double>& out) {
  if (j.is_object()) {
    for (auto it = j.begin(); it != j.end(); ++it) flatten(it.value(), prefix.empty() ? it.key() : prefix + "." + it.key(), out);
  } else if (j.is_array()) {
    for (size_t i = 0; i < j.size(); ++i) flatten(j[i], prefix + "." + std::to_string(i), out);
  } else if (j.is_number()) {
    out[prefix] = j.get<double>();
  } else if (j.is_boolean()) {
    out[prefix] = j.get<bool>() ? 1.0 : 0.0;
  } else {
    out[prefix] = kNaN;  // null (nlohmann writes NaN as null) or a string
  }
}

}  // namespace

Series& Chart::add_series(std::string name, std::vector<double> x, std::vector<double> y) {
  Series s;
  s.name = std::move(name);
  s.x = std::move(x);
  s.y = std::move(y);
  series.push_back(std::move(s));
  return series.back();
}

std::string render_svg(const std::vector<Chart>& charts) {
  if (charts.empty()) throw Error("plot: no chart to draw");
  int width = 0, height = 0;
  for (const Chart& c : charts) width = std::max(width, c.width), height += c.height;
  std::ostringstream o;
  o << "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  o << strfmt("<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
              "font-family=\"sans-serif\">\n",
              width, height, width, height);
  o << "<rect x=\"0\" y=\"0\" width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  int top = 0;
  for (const Chart& c : charts) {
    render_chart(c, top, o);
    top += c.height;
  }
  o << "</svg>\n";
  return o.str();
}

std::string Chart::svg() const { return render_svg({*this}); }

void write_svg(const std::string& path, const std::vector<Chart>& charts) {
  std::string text;
  try {
    text = render_svg(charts);
  } catch (const Error& e) {
    throw Error(path + ": " + e.what());
  }
  write_file_atomic(path, text);
}

void Chart::write_svg(const std::string& path) const { plot::write_svg(path, {*this}); }

std::vector<double> nice_ticks(double lo, double hi, int target) {
  SEEK_ASSERT(std::isfinite(lo) && std::isfinite(hi) && lo <= hi);
  if (lo == hi) {
    const double d = lo == 0 ? 1.0 : std::fabs(lo) * 0.1;
    lo -= d, hi += d;
  }
  const double raw = (hi - lo) / double(std::max(1, target));
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  const double f = raw / mag;
  const double step = (f <= 1.0 ? 1.0 : f <= 2.0 ? 2.0 : f <= 5.0 ? 5.0 : 10.0) * mag;
  // Integer multiples of the step (no accumulated rounding); nudged so that they enclose [lo, hi].
  auto k0 = int64_t(std::floor(lo / step + 1e-9)), k1 = int64_t(std::ceil(hi / step - 1e-9));
  if (double(k0) * step > lo) --k0;
  if (double(k1) * step < hi) ++k1;
  if (k1 == k0) ++k1;
  std::vector<double> t;
  for (int64_t k = k0; k <= k1; ++k) t.push_back(double(k) * step);
  return t;
}

std::vector<double> log_ticks(double lo, double hi) {
  SEEK_ASSERT(std::isfinite(lo) && std::isfinite(hi) && lo > 0 && lo <= hi);
  auto e0 = int(std::floor(std::log10(lo) + 1e-9)), e1 = int(std::ceil(std::log10(hi) - 1e-9));
  if (std::pow(10.0, e0) > lo) --e0;
  if (std::pow(10.0, e1) < hi) ++e1;
  if (e1 == e0) ++e1;
  std::vector<double> t;
  if (e1 - e0 == 1) {  // one decade: 1, 2, 5, 10 × 10^e0, trimmed to the ones that enclose [lo, hi]
    const double base = std::pow(10.0, e0);
    std::vector<double> all = {base, 2 * base, 5 * base, 10 * base};
    size_t a = 0, b = all.size() - 1;
    while (a + 1 < all.size() && all[a + 1] <= lo) ++a;
    while (b > a + 1 && all[b - 1] >= hi) --b;
    return {all.begin() + long(a), all.begin() + long(b) + 1};
  }
  const int every = std::max(1, (e1 - e0 + 7) / 8);  // at most ~8 labels
  for (int e = e0; e <= e1; e += every) t.push_back(std::pow(10.0, e));
  if (t.back() < hi) t.push_back(std::pow(10.0, e1));
  return t;
}

std::vector<double> Columns::get(const std::string& name) const {
  auto it = col.find(name);
  return it == col.end() ? std::vector<double>(rows, kNaN) : it->second;
}

Columns read_jsonl(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot open");
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  Columns c;
  size_t pos = 0, line_no = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    const bool complete = nl != std::string::npos;
    const std::string line = text.substr(pos, complete ? nl - pos : std::string::npos);
    pos = complete ? nl + 1 : text.size();
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      if (!complete) break;  // the last line, cut short
      throw Error(strfmt("%s: line %zu: not valid JSON: %s", path.c_str(), line_no, e.what()));
    }
    if (!j.is_object()) {
      if (!complete) break;
      throw Error(strfmt("%s: line %zu: expected a JSON object, got %s", path.c_str(), line_no, j.type_name()));
    }
    std::map<std::string, double> row;
    flatten(j, "", row);
    for (auto& [k, v] : row) {
      std::vector<double>& column = c.col[k];
      column.resize(c.rows, kNaN);  // a field new in this row: NaN in the earlier ones
      column.push_back(v);
    }
    ++c.rows;
    for (auto& [k, v] : c.col) v.resize(c.rows, kNaN);
  }
  return c;
}

Columns drop_superseded(const Columns& c, const std::string& key) {
  const std::vector<double> k = c.get(key);
  std::vector<bool> keep(c.rows, true);
  double later = INFINITY;  // the smallest key of the rows after this one
  for (size_t i = c.rows; i-- > 0;) {
    if (!std::isfinite(k[i])) continue;
    keep[i] = k[i] < later;
    later = std::min(later, k[i]);
  }
  Columns r;
  for (size_t i = 0; i < c.rows; ++i) r.rows += keep[i];
  for (const auto& [name, v] : c.col) {
    std::vector<double>& out = r.col[name];
    for (size_t i = 0; i < c.rows; ++i)
      if (keep[i]) out.push_back(v[i]);
  }
  return r;
}

}  // namespace seek::plot
