// The SVG line-chart writer: a well-formed document (balanced tags, escaped text), one polyline point
// per finite point with NaN making a gap, nice ticks that enclose the data, a constant series, refusals
// with clear errors; the JSON-lines reader and the dropping of rows a resumed run re-did.
// GCC 12 with the sanitizers warns -Wmaybe-uninitialized inside libstdc++'s std::regex automaton (a false
// positive, in <functional>); the warning is off for this file, as for test_tasks.cpp, which uses it too.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <regex>

#include "test_util.h"
#include "util/error.h"
#include "util/plot.h"

using namespace seek;
using namespace seek::plot;
namespace fs = std::filesystem;

namespace {

const double kNaN = std::nan("");

// Every element opened is closed, in order (self-closing ones excepted); no stray '<' or '&' in text.
void expect_well_formed(const std::string& svg) {
  std::vector<std::string> stack;
  std::regex tag(R"(<(/?)([A-Za-z][A-Za-z0-9]*)([^<>]*?)(/?)>)");
  const std::string decl = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  ASSERT_EQ(svg.rfind(decl, 0), 0u) << "no XML declaration";
  size_t last = decl.size();
  bool in_svg = false;
  for (auto it = std::sregex_iterator(svg.begin() + long(last), svg.end(), tag); it != std::sregex_iterator(); ++it) {
    const std::smatch& m = *it;
    // The text between tags has no raw '<', and every '&' starts an entity.
    const size_t at = decl.size() + size_t(m.position());
    const std::string between = svg.substr(last, at - last);
    EXPECT_EQ(between.find('<'), std::string::npos) << between;
    for (size_t a = between.find('&'); a != std::string::npos; a = between.find('&', a + 1))
      EXPECT_TRUE(std::regex_search(between.substr(a), std::regex("^&(amp|lt|gt|quot|apos);"))) << between.substr(a);
    last = at + size_t(m.length());
    const std::string name = m[2];
    if (name == "svg") in_svg = m[1] != "/";
    if (m[1] == "/") {
      ASSERT_FALSE(stack.empty()) << "</" << name << "> closes nothing";
      EXPECT_EQ(stack.back(), name);
      stack.pop_back();
    } else if (m[4] != "/") {
      stack.push_back(name);
    }
  }
  EXPECT_TRUE(stack.empty()) << stack.size() << " unclosed, first <" << (stack.empty() ? "" : stack[0]) << ">";
  EXPECT_FALSE(in_svg);
  EXPECT_NE(svg.find("xmlns=\"http://www.w3.org/2000/svg\""), std::string::npos);
  EXPECT_EQ(svg.find("<script"), std::string::npos);
}

// Per series group: the number of points drawn (polyline vertices + dots) and of polylines.
struct Drawn {
  std::string name;
  size_t points = 0, polylines = 0, dots = 0;
};
std::vector<Drawn> drawn_series(const std::string& svg) {
  std::vector<Drawn> out;
  const std::string open = "<g class=\"series\"";
  for (size_t p = svg.find(open); p != std::string::npos; p = svg.find(open, p + 1)) {
    const size_t end = svg.find("</g>", p);
    const std::string g = svg.substr(p, end - p);
    Drawn d;
    const size_t t = g.find("<title>");
    d.name = g.substr(t + 7, g.find("</title>") - t - 7);
    for (size_t q = g.find("points=\""); q != std::string::npos; q = g.find("points=\"", q + 1)) {
      const std::string pts = g.substr(q + 8, g.find('"', q + 8) - q - 8);
      d.points += size_t(std::count(pts.begin(), pts.end(), ',')), ++d.polylines;
    }
    for (size_t q = g.find("<circle"); q != std::string::npos; q = g.find("<circle", q + 1)) ++d.points, ++d.dots;
    out.push_back(d);
  }
  return out;
}

}  // namespace

TEST(Plot, SeriesDrawnWithGapsAndEscapedText) {
  Chart c;
  c.title = "loss <train> & \"val\"";
  c.x_label = "step";
  c.y_label = "cross-entropy";
  c.add_series("train", {0, 1, 2, 3, 4, 5, 6}, {5.0, 4.0, kNaN, 3.0, 2.5, 2.2, 2.0});
  c.add_series("a<b", {0, 10, 20}, {6.0, kNaN, 3.5});  // two isolated points: dots
  c.add_series("empty", {1}, {kNaN});
  const std::string svg = c.svg();
  expect_well_formed(svg);
  EXPECT_NE(svg.find("loss &lt;train&gt; &amp; &quot;val&quot;"), std::string::npos);
  EXPECT_EQ(svg.find("<train>"), std::string::npos);
  std::vector<Drawn> d = drawn_series(svg);
  ASSERT_EQ(d.size(), 3u);
  EXPECT_EQ(d[0].name, "train");
  EXPECT_EQ(d[0].points, 6u);     // 7 points, one NaN
  EXPECT_EQ(d[0].polylines, 2u);  // the NaN splits the line
  EXPECT_EQ(d[1].name, "a&lt;b");
  EXPECT_EQ(d[1].points, 2u);
  EXPECT_EQ(d[1].dots, 2u);
  EXPECT_EQ(d[2].points, 0u);
  // Legend names appear outside the groups too.
  EXPECT_GE(std::count(svg.begin(), svg.end(), '>'), 20);
  EXPECT_NE(svg.find(">train</text>"), std::string::npos);
  EXPECT_NE(svg.find(">empty</text>"), std::string::npos);
}

TEST(Plot, PointsStayInsideThePlotArea) {
  Chart c;
  c.title = "t";
  c.add_series("s", {3, 7, 11}, {-2.5, 0.3, 9.1});
  const std::string svg = c.svg();
  std::smatch m;
  std::regex pts("points=\"([^\"]*)\"");
  ASSERT_TRUE(std::regex_search(svg, m, pts));
  std::istringstream in(m[1].str());
  std::string xy;
  while (in >> xy) {
    const double x = std::stod(xy.substr(0, xy.find(','))), y = std::stod(xy.substr(xy.find(',') + 1));
    EXPECT_GE(x, 0);
    EXPECT_LE(x, c.width);
    EXPECT_GE(y, 0);
    EXPECT_LE(y, c.height);
  }
}

TEST(Plot, NiceTicksCoverTheRange) {
  struct Case { double lo, hi; };
  for (Case k : {Case{0, 1}, Case{0.37, 2.91}, Case{-13.2, 47.9}, Case{1e-5, 3e-5}, Case{1234, 98765}, Case{2.0, 2.001},
                 Case{-5, -1}, Case{0, 100}}) {
    std::vector<double> t = nice_ticks(k.lo, k.hi);
    ASSERT_GE(t.size(), 2u) << k.lo << " " << k.hi;
    EXPECT_LE(t.front(), k.lo);
    EXPECT_GE(t.back(), k.hi);
    EXPECT_LE(t.size(), 13u);
    const double step = t[1] - t[0];
    // The step is 1, 2 or 5 times a power of ten.
    const double mant = step / std::pow(10.0, std::floor(std::log10(step) + 1e-12));
    EXPECT_TRUE(std::fabs(mant - 1) < 1e-6 || std::fabs(mant - 2) < 1e-6 || std::fabs(mant - 5) < 1e-6)
        << "step " << step << " for [" << k.lo << ", " << k.hi << "]";
    for (size_t i = 1; i < t.size(); ++i) EXPECT_NEAR(t[i] - t[i - 1], step, step * 1e-9);
    for (double v : t) EXPECT_NEAR(v / step, std::round(v / step), 1e-6);  // multiples of the step
  }
  // Exact ends: [0, 1] gives 0 .. 1 in steps of 0.2.
  std::vector<double> t = nice_ticks(0, 1, 5);
  EXPECT_DOUBLE_EQ(t.front(), 0.0);
  EXPECT_DOUBLE_EQ(t.back(), 1.0);
  EXPECT_EQ(t.size(), 6u);
  // Log ticks: powers of ten enclosing the range, or 1-2-5 within one decade.
  std::vector<double> lt = log_ticks(0.03, 70);
  EXPECT_DOUBLE_EQ(lt.front(), 0.01);
  EXPECT_DOUBLE_EQ(lt.back(), 100);
  lt = log_ticks(2.5, 4.0);
  EXPECT_DOUBLE_EQ(lt.front(), 2);
  EXPECT_DOUBLE_EQ(lt.back(), 5);
}

TEST(Plot, ConstantSeriesAndLogAxis) {
  Chart c;
  c.title = "flat";
  c.add_series("one", {5, 5, 5}, {1.5, 1.5, 1.5});  // constant in x and y
  const std::string svg = c.svg();
  expect_well_formed(svg);
  EXPECT_EQ(svg.find("nan"), std::string::npos);
  EXPECT_EQ(svg.find("inf"), std::string::npos);
  EXPECT_EQ(drawn_series(svg)[0].points, 3u);
  std::vector<double> t = nice_ticks(0, 0);
  EXPECT_LT(t.front(), 0);
  EXPECT_GT(t.back(), 0);
  // A count that is zero throughout, with the axis floored at 0: no negative ticks.
  Chart z;
  z.title = "dead";
  z.y_min = 0;
  z.add_series("zero", {1, 2, 3}, {0, 0, 0});
  const std::string zs = z.svg();
  expect_well_formed(zs);
  EXPECT_NE(zs.find(">0.0</text>"), std::string::npos);
  EXPECT_NE(zs.find(">1.0</text>"), std::string::npos);
  EXPECT_EQ(zs.find(">-"), std::string::npos) << zs;
  // The floor gives way to data below it.
  z.add_series("negative", {1, 2}, {-3, 2});
  EXPECT_NE(z.svg().find(">-3</text>"), std::string::npos);

  Chart lg;
  lg.title = "log";
  lg.log_y = true;
  lg.add_series("s", {1, 2, 3, 4}, {100, 10, -1, 0.1});  // y <= 0 cannot be drawn: a gap
  const std::string ls = lg.svg();
  expect_well_formed(ls);
  std::vector<Drawn> d = drawn_series(ls);
  EXPECT_EQ(d[0].points, 3u);
  EXPECT_EQ(d[0].polylines, 1u);
  EXPECT_EQ(d[0].dots, 1u);
  EXPECT_NE(ls.find(">0.1</text>"), std::string::npos);
  EXPECT_NE(ls.find(">100</text>"), std::string::npos);
}

TEST(Plot, RefusesEmptyCharts) {
  auto message = [](const Chart& c) {
    try {
      c.svg();
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("(no error)");
  };
  Chart c;
  c.title = "nothing";
  EXPECT_NE(message(c).find("chart \"nothing\": no series"), std::string::npos) << message(c);
  c.add_series("all-nan", {1, 2}, {kNaN, kNaN});
  EXPECT_NE(message(c).find("nothing to draw"), std::string::npos) << message(c);
  c.add_series("bad", {1, 2, 3}, {1, 2});
  EXPECT_NE(message(c).find("series \"bad\": x has 3 values, y has 2"), std::string::npos) << message(c);
  test::TempDir dir;
  try {
    Chart e;
    e.title = "e";
    e.write_svg(dir / "e.svg");
    ADD_FAILURE() << "an empty chart was written";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("e.svg"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(dir / "e.svg"));
}

TEST(Plot, StackedChartsInOneFile) {
  test::TempDir dir;
  Chart a, b;
  a.title = "A";
  a.add_series("x", {0, 1}, {0, 1});
  b.title = "B";
  b.height = 300;
  b.add_series("y", {0, 1}, {1, 0}).dashed = true;
  write_svg(dir / "ab.svg", {a, b});
  std::ifstream in(dir / "ab.svg");
  const std::string svg((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  expect_well_formed(svg);
  EXPECT_NE(svg.find("height=\"700\""), std::string::npos);
  EXPECT_EQ(drawn_series(svg).size(), 2u);
  EXPECT_NE(svg.find("stroke-dasharray"), std::string::npos);
}

TEST(Plot, ReadsJsonLinesIntoColumns) {
  test::TempDir dir;
  const std::string path = dir / "m.jsonl";
  test::write_text(path,
                   "{\"step\": 0, \"val_loss\": 5.5}\n"
                   "\n"
                   "{\"step\": 2, \"loss\": 4.0, \"moe\": {\"1\": {\"dead\": 3}}, \"v\": [7, null], \"ok\": true}\n"
                   "{\"step\": 4, \"loss\": 3.0, \"name\": \"x\"}\n"
                   "{\"step\": 3, \"loss\": 3.5}\n"
                   "{\"step\": 4, \"lo");  // cut short by a kill
  Columns c = read_jsonl(path);
  ASSERT_EQ(c.rows, 4u);
  std::vector<double> loss = c.get("loss");
  EXPECT_TRUE(std::isnan(loss[0]));
  EXPECT_EQ(loss[1], 4.0);
  EXPECT_EQ(c.get("moe.1.dead")[1], 3.0);
  EXPECT_TRUE(std::isnan(c.get("moe.1.dead")[2]));
  EXPECT_EQ(c.get("v.0")[1], 7.0);
  EXPECT_TRUE(std::isnan(c.get("v.1")[1]));
  EXPECT_EQ(c.get("ok")[1], 1.0);
  EXPECT_TRUE(std::isnan(c.get("name")[2]));
  EXPECT_FALSE(c.has("nope"));
  EXPECT_EQ(c.get("nope").size(), 4u);
  // A resumed run re-did step 4 from step 3's checkpoint: the rows at 4 before it are superseded.
  Columns d = drop_superseded(c, "step");
  EXPECT_EQ(d.get("step"), (std::vector<double>{0, 2, 3}));
  EXPECT_EQ(d.get("loss")[2], 3.5);
  // A broken line in the middle is an error naming the file and line.
  test::write_text(path, "{\"step\": 0}\n{oops}\n{\"step\": 1}\n");
  try {
    read_jsonl(path);
    ADD_FAILURE() << "read a broken line";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("m.jsonl: line 2"), std::string::npos) << e.what();
  }
  EXPECT_THROW(read_jsonl(dir / "missing.jsonl"), Error);
}
