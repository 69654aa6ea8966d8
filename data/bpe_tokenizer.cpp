#include "data/bpe_tokenizer.h"

#include <algorithm>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <queue>
#include <sstream>
#include <unordered_map>

#include "common/error.h"

namespace ropelab::data {
namespace {

using json = nlohmann::json;

// ---- Unicode classes ----
// \p{L} and \p{N}: General_Category L* and N* of Unicode 17.0, as ranges.
// Generated with Node 20 (ICU 78, Unicode 17.0) by testing every code point
// against /^\p{L}$/u and /^\p{N}$/u and writing maximal runs.
struct Range {
  uint32_t lo, hi;
};
const Range kLetter[] = {  // 684 ranges
    {0x41, 0x5A}, {0x61, 0x7A}, {0xAA, 0xAA}, {0xB5, 0xB5}, {0xBA, 0xBA}, {0xC0, 0xD6},
    {0xD8, 0xF6}, {0xF8, 0x2C1}, {0x2C6, 0x2D1}, {0x2E0, 0x2E4}, {0x2EC, 0x2EC}, {0x2EE, 0x2EE},
    {0x370, 0x374}, {0x376, 0x377}, {0x37A, 0x37D}, {0x37F, 0x37F}, {0x386, 0x386}, {0x388, 0x38A},
    {0x38C, 0x38C}, {0x38E, 0x3A1}, {0x3A3, 0x3F5}, {0x3F7, 0x481}, {0x48A, 0x52F}, {0x531, 0x556},
    {0x559, 0x559}, {0x560, 0x588}, {0x5D0, 0x5EA}, {0x5EF, 0x5F2}, {0x620, 0x64A}, {0x66E, 0x66F},
    {0x671, 0x6D3}, {0x6D5, 0x6D5}, {0x6E5, 0x6E6}, {0x6EE, 0x6EF}, {0x6FA, 0x6FC}, {0x6FF, 0x6FF},
    {0x710, 0x710}, {0x712, 0x72F}, {0x74D, 0x7A5}, {0x7B1, 0x7B1}, {0x7CA, 0x7EA}, {0x7F4, 0x7F5},
    {0x7FA, 0x7FA}, {0x800, 0x815}, {0x81A, 0x81A}, {0x824, 0x824}, {0x828, 0x828}, {0x840, 0x858},
    {0x860, 0x86A}, {0x870, 0x887}, {0x889, 0x88F}, {0x8A0, 0x8C9}, {0x904, 0x939}, {0x93D, 0x93D},
    {0x950, 0x950}, {0x958, 0x961}, {0x971, 0x980}, {0x985, 0x98C}, {0x98F, 0x990}, {0x993, 0x9A8},
    {0x9AA, 0x9B0}, {0x9B2, 0x9B2}, {0x9B6, 0x9B9}, {0x9BD, 0x9BD}, {0x9CE, 0x9CE}, {0x9DC, 0x9DD},
    {0x9DF, 0x9E1}, {0x9F0, 0x9F1}, {0x9FC, 0x9FC}, {0xA05, 0xA0A}, {0xA0F, 0xA10}, {0xA13, 0xA28},
    {0xA2A, 0xA30}, {0xA32, 0xA33}, {0xA35, 0xA36}, {0xA38, 0xA39}, {0xA59, 0xA5C}, {0xA5E, 0xA5E},
    {0xA72, 0xA74}, {0xA85, 0xA8D}, {0xA8F, 0xA91}, {0xA93, 0xAA8}, {0xAAA, 0xAB0}, {0xAB2, 0xAB3},
    {0xAB5, 0xAB9}, {0xABD, 0xABD}, {0xAD0, 0xAD0}, {0xAE0, 0xAE1}, {0xAF9, 0xAF9}, {0xB05, 0xB0C},
    {0xB0F, 0xB10}, {0xB13, 0xB28}, {0xB2A, 0xB30}, {0xB32, 0xB33}, {0xB35, 0xB39}, {0xB3D, 0xB3D},
    {0xB5C, 0xB5D}, {0xB5F, 0xB61}, {0xB71, 0xB71}, {0xB83, 0xB83}, {0xB85, 0xB8A}, {0xB8E, 0xB90},
    {0xB92, 0xB95}, {0xB99, 0xB9A}, {0xB9C, 0xB9C}, {0xB9E, 0xB9F}, {0xBA3, 0xBA4}, {0xBA8, 0xBAA},
    {0xBAE, 0xBB9}, {0xBD0, 0xBD0}, {0xC05, 0xC0C}, {0xC0E, 0xC10}, {0xC12, 0xC28}, {0xC2A, 0xC39},
    {0xC3D, 0xC3D}, {0xC58, 0xC5A}, {0xC5C, 0xC5D}, {0xC60, 0xC61}, {0xC80, 0xC80}, {0xC85, 0xC8C},
    {0xC8E, 0xC90}, {0xC92, 0xCA8}, {0xCAA, 0xCB3}, {0xCB5, 0xCB9}, {0xCBD, 0xCBD}, {0xCDC, 0xCDE},
    {0xCE0, 0xCE1}, {0xCF1, 0xCF2}, {0xD04, 0xD0C}, {0xD0E, 0xD10}, {0xD12, 0xD3A}, {0xD3D, 0xD3D},
    {0xD4E, 0xD4E}, {0xD54, 0xD56}, {0xD5F, 0xD61}, {0xD7A, 0xD7F}, {0xD85, 0xD96}, {0xD9A, 0xDB1},
    {0xDB3, 0xDBB}, {0xDBD, 0xDBD}, {0xDC0, 0xDC6}, {0xE01, 0xE30}, {0xE32, 0xE33}, {0xE40, 0xE46},
    {0xE81, 0xE82}, {0xE84, 0xE84}, {0xE86, 0xE8A}, {0xE8C, 0xEA3}, {0xEA5, 0xEA5}, {0xEA7, 0xEB0},
    {0xEB2, 0xEB3}, {0xEBD, 0xEBD}, {0xEC0, 0xEC4}, {0xEC6, 0xEC6}, {0xEDC, 0xEDF}, {0xF00, 0xF00},
    {0xF40, 0xF47}, {0xF49, 0xF6C}, {0xF88, 0xF8C}, {0x1000, 0x102A}, {0x103F, 0x103F},
    {0x1050, 0x1055}, {0x105A, 0x105D}, {0x1061, 0x1061}, {0x1065, 0x1066}, {0x106E, 0x1070},
    {0x1075, 0x1081}, {0x108E, 0x108E}, {0x10A0, 0x10C5}, {0x10C7, 0x10C7}, {0x10CD, 0x10CD},
    {0x10D0, 0x10FA}, {0x10FC, 0x1248}, {0x124A, 0x124D}, {0x1250, 0x1256}, {0x1258, 0x1258},
    {0x125A, 0x125D}, {0x1260, 0x1288}, {0x128A, 0x128D}, {0x1290, 0x12B0}, {0x12B2, 0x12B5},
    {0x12B8, 0x12BE}, {0x12C0, 0x12C0}, {0x12C2, 0x12C5}, {0x12C8, 0x12D6}, {0x12D8, 0x1310},
    {0x1312, 0x1315}, {0x1318, 0x135A}, {0x1380, 0x138F}, {0x13A0, 0x13F5}, {0x13F8, 0x13FD},
    {0x1401, 0x166C}, {0x166F, 0x167F}, {0x1681, 0x169A}, {0x16A0, 0x16EA}, {0x16F1, 0x16F8},
    {0x1700, 0x1711}, {0x171F, 0x1731}, {0x1740, 0x1751}, {0x1760, 0x176C}, {0x176E, 0x1770},
    {0x1780, 0x17B3}, {0x17D7, 0x17D7}, {0x17DC, 0x17DC}, {0x1820, 0x1878}, {0x1880, 0x1884},
    {0x1887, 0x18A8}, {0x18AA, 0x18AA}, {0x18B0, 0x18F5}, {0x1900, 0x191E}, {0x1950, 0x196D},
    {0x1970, 0x1974}, {0x1980, 0x19AB}, {0x19B0, 0x19C9}, {0x1A00, 0x1A16}, {0x1A20, 0x1A54},
    {0x1AA7, 0x1AA7}, {0x1B05, 0x1B33}, {0x1B45, 0x1B4C}, {0x1B83, 0x1BA0}, {0x1BAE, 0x1BAF},
    {0x1BBA, 0x1BE5}, {0x1C00, 0x1C23}, {0x1C4D, 0x1C4F}, {0x1C5A, 0x1C7D}, {0x1C80, 0x1C8A},
    {0x1C90, 0x1CBA}, {0x1CBD, 0x1CBF}, {0x1CE9, 0x1CEC}, {0x1CEE, 0x1CF3}, {0x1CF5, 0x1CF6},
    {0x1CFA, 0x1CFA}, {0x1D00, 0x1DBF}, {0x1E00, 0x1F15}, {0x1F18, 0x1F1D}, {0x1F20, 0x1F45},
    {0x1F48, 0x1F4D}, {0x1F50, 0x1F57}, {0x1F59, 0x1F59}, {0x1F5B, 0x1F5B}, {0x1F5D, 0x1F5D},
    {0x1F5F, 0x1F7D}, {0x1F80, 0x1FB4}, {0x1FB6, 0x1FBC}, {0x1FBE, 0x1FBE}, {0x1FC2, 0x1FC4},
    {0x1FC6, 0x1FCC}, {0x1FD0, 0x1FD3}, {0x1FD6, 0x1FDB}, {0x1FE0, 0x1FEC}, {0x1FF2, 0x1FF4},
    {0x1FF6, 0x1FFC}, {0x2071, 0x2071}, {0x207F, 0x207F}, {0x2090, 0x209C}, {0x2102, 0x2102},
    {0x2107, 0x2107}, {0x210A, 0x2113}, {0x2115, 0x2115}, {0x2119, 0x211D}, {0x2124, 0x2124},
    {0x2126, 0x2126}, {0x2128, 0x2128}, {0x212A, 0x212D}, {0x212F, 0x2139}, {0x213C, 0x213F},
    {0x2145, 0x2149}, {0x214E, 0x214E}, {0x2183, 0x2184}, {0x2C00, 0x2CE4}, {0x2CEB, 0x2CEE},
    {0x2CF2, 0x2CF3}, {0x2D00, 0x2D25}, {0x2D27, 0x2D27}, {0x2D2D, 0x2D2D}, {0x2D30, 0x2D67},
    {0x2D6F, 0x2D6F}, {0x2D80, 0x2D96}, {0x2DA0, 0x2DA6}, {0x2DA8, 0x2DAE}, {0x2DB0, 0x2DB6},
    {0x2DB8, 0x2DBE}, {0x2DC0, 0x2DC6}, {0x2DC8, 0x2DCE}, {0x2DD0, 0x2DD6}, {0x2DD8, 0x2DDE},
    {0x2E2F, 0x2E2F}, {0x3005, 0x3006}, {0x3031, 0x3035}, {0x303B, 0x303C}, {0x3041, 0x3096},
    {0x309D, 0x309F}, {0x30A1, 0x30FA}, {0x30FC, 0x30FF}, {0x3105, 0x312F}, {0x3131, 0x318E},
    {0x31A0, 0x31BF}, {0x31F0, 0x31FF}, {0x3400, 0x4DBF}, {0x4E00, 0xA48C}, {0xA4D0, 0xA4FD},
    {0xA500, 0xA60C}, {0xA610, 0xA61F}, {0xA62A, 0xA62B}, {0xA640, 0xA66E}, {0xA67F, 0xA69D},
    {0xA6A0, 0xA6E5}, {0xA717, 0xA71F}, {0xA722, 0xA788}, {0xA78B, 0xA7DC}, {0xA7F1, 0xA801},
    {0xA803, 0xA805}, {0xA807, 0xA80A}, {0xA80C, 0xA822}, {0xA840, 0xA873}, {0xA882, 0xA8B3},
    {0xA8F2, 0xA8F7}, {0xA8FB, 0xA8FB}, {0xA8FD, 0xA8FE}, {0xA90A, 0xA925}, {0xA930, 0xA946},
    {0xA960, 0xA97C}, {0xA984, 0xA9B2}, {0xA9CF, 0xA9CF}, {0xA9E0, 0xA9E4}, {0xA9E6, 0xA9EF},
    {0xA9FA, 0xA9FE}, {0xAA00, 0xAA28}, {0xAA40, 0xAA42}, {0xAA44, 0xAA4B}, {0xAA60, 0xAA76},
    {0xAA7A, 0xAA7A}, {0xAA7E, 0xAAAF}, {0xAAB1, 0xAAB1}, {0xAAB5, 0xAAB6}, {0xAAB9, 0xAABD},
    {0xAAC0, 0xAAC0}, {0xAAC2, 0xAAC2}, {0xAADB, 0xAADD}, {0xAAE0, 0xAAEA}, {0xAAF2, 0xAAF4},
    {0xAB01, 0xAB06}, {0xAB09, 0xAB0E}, {0xAB11, 0xAB16}, {0xAB20, 0xAB26}, {0xAB28, 0xAB2E},
    {0xAB30, 0xAB5A}, {0xAB5C, 0xAB69}, {0xAB70, 0xABE2}, {0xAC00, 0xD7A3}, {0xD7B0, 0xD7C6},
    {0xD7CB, 0xD7FB}, {0xF900, 0xFA6D}, {0xFA70, 0xFAD9}, {0xFB00, 0xFB06}, {0xFB13, 0xFB17},
    {0xFB1D, 0xFB1D}, {0xFB1F, 0xFB28}, {0xFB2A, 0xFB36}, {0xFB38, 0xFB3C}, {0xFB3E, 0xFB3E},
    {0xFB40, 0xFB41}, {0xFB43, 0xFB44}, {0xFB46, 0xFBB1}, {0xFBD3, 0xFD3D}, {0xFD50, 0xFD8F},
    {0xFD92, 0xFDC7}, {0xFDF0, 0xFDFB}, {0xFE70, 0xFE74}, {0xFE76, 0xFEFC}, {0xFF21, 0xFF3A},
    {0xFF41, 0xFF5A}, {0xFF66, 0xFFBE}, {0xFFC2, 0xFFC7}, {0xFFCA, 0xFFCF}, {0xFFD2, 0xFFD7},
    {0xFFDA, 0xFFDC}, {0x10000, 0x1000B}, {0x1000D, 0x10026}, {0x10028, 0x1003A},
    {0x1003C, 0x1003D}, {0x1003F, 0x1004D}, {0x10050, 0x1005D}, {0x10080, 0x100FA},
    {0x10280, 0x1029C}, {0x102A0, 0x102D0}, {0x10300, 0x1031F}, {0x1032D, 0x10340},
    {0x10342, 0x10349}, {0x10350, 0x10375}, {0x10380, 0x1039D}, {0x103A0, 0x103C3},
    {0x103C8, 0x103CF}, {0x10400, 0x1049D}, {0x104B0, 0x104D3}, {0x104D8, 0x104FB},
    {0x10500, 0x10527}, {0x10530, 0x10563}, {0x10570, 0x1057A}, {0x1057C, 0x1058A},
    {0x1058C, 0x10592}, {0x10594, 0x10595}, {0x10597, 0x105A1}, {0x105A3, 0x105B1},
    {0x105B3, 0x105B9}, {0x105BB, 0x105BC}, {0x105C0, 0x105F3}, {0x10600, 0x10736},
    {0x10740, 0x10755}, {0x10760, 0x10767}, {0x10780, 0x10785}, {0x10787, 0x107B0},
    {0x107B2, 0x107BA}, {0x10800, 0x10805}, {0x10808, 0x10808}, {0x1080A, 0x10835},
    {0x10837, 0x10838}, {0x1083C, 0x1083C}, {0x1083F, 0x10855}, {0x10860, 0x10876},
    {0x10880, 0x1089E}, {0x108E0, 0x108F2}, {0x108F4, 0x108F5}, {0x10900, 0x10915},
    {0x10920, 0x10939}, {0x10940, 0x10959}, {0x10980, 0x109B7}, {0x109BE, 0x109BF},
    {0x10A00, 0x10A00}, {0x10A10, 0x10A13}, {0x10A15, 0x10A17}, {0x10A19, 0x10A35},
    {0x10A60, 0x10A7C}, {0x10A80, 0x10A9C}, {0x10AC0, 0x10AC7}, {0x10AC9, 0x10AE4},
    {0x10B00, 0x10B35}, {0x10B40, 0x10B55}, {0x10B60, 0x10B72}, {0x10B80, 0x10B91},
    {0x10C00, 0x10C48}, {0x10C80, 0x10CB2}, {0x10CC0, 0x10CF2}, {0x10D00, 0x10D23},
    {0x10D4A, 0x10D65}, {0x10D6F, 0x10D85}, {0x10E80, 0x10EA9}, {0x10EB0, 0x10EB1},
    {0x10EC2, 0x10EC7}, {0x10F00, 0x10F1C}, {0x10F27, 0x10F27}, {0x10F30, 0x10F45},
    {0x10F70, 0x10F81}, {0x10FB0, 0x10FC4}, {0x10FE0, 0x10FF6}, {0x11003, 0x11037},
    {0x11071, 0x11072}, {0x11075, 0x11075}, {0x11083, 0x110AF}, {0x110D0, 0x110E8},
    {0x11103, 0x11126}, {0x11144, 0x11144}, {0x11147, 0x11147}, {0x11150, 0x11172},
    {0x11176, 0x11176}, {0x11183, 0x111B2}, {0x111C1, 0x111C4}, {0x111DA, 0x111DA},
    {0x111DC, 0x111DC}, {0x11200, 0x11211}, {0x11213, 0x1122B}, {0x1123F, 0x11240},
    {0x11280, 0x11286}, {0x11288, 0x11288}, {0x1128A, 0x1128D}, {0x1128F, 0x1129D},
    {0x1129F, 0x112A8}, {0x112B0, 0x112DE}, {0x11305, 0x1130C}, {0x1130F, 0x11310},
    {0x11313, 0x11328}, {0x1132A, 0x11330}, {0x11332, 0x11333}, {0x11335, 0x11339},
    {0x1133D, 0x1133D}, {0x11350, 0x11350}, {0x1135D, 0x11361}, {0x11380, 0x11389},
    {0x1138B, 0x1138B}, {0x1138E, 0x1138E}, {0x11390, 0x113B5}, {0x113B7, 0x113B7},
    {0x113D1, 0x113D1}, {0x113D3, 0x113D3}, {0x11400, 0x11434}, {0x11447, 0x1144A},
    {0x1145F, 0x11461}, {0x11480, 0x114AF}, {0x114C4, 0x114C5}, {0x114C7, 0x114C7},
    {0x11580, 0x115AE}, {0x115D8, 0x115DB}, {0x11600, 0x1162F}, {0x11644, 0x11644},
    {0x11680, 0x116AA}, {0x116B8, 0x116B8}, {0x11700, 0x1171A}, {0x11740, 0x11746},
    {0x11800, 0x1182B}, {0x118A0, 0x118DF}, {0x118FF, 0x11906}, {0x11909, 0x11909},
    {0x1190C, 0x11913}, {0x11915, 0x11916}, {0x11918, 0x1192F}, {0x1193F, 0x1193F},
    {0x11941, 0x11941}, {0x119A0, 0x119A7}, {0x119AA, 0x119D0}, {0x119E1, 0x119E1},
    {0x119E3, 0x119E3}, {0x11A00, 0x11A00}, {0x11A0B, 0x11A32}, {0x11A3A, 0x11A3A},
    {0x11A50, 0x11A50}, {0x11A5C, 0x11A89}, {0x11A9D, 0x11A9D}, {0x11AB0, 0x11AF8},
    {0x11BC0, 0x11BE0}, {0x11C00, 0x11C08}, {0x11C0A, 0x11C2E}, {0x11C40, 0x11C40},
    {0x11C72, 0x11C8F}, {0x11D00, 0x11D06}, {0x11D08, 0x11D09}, {0x11D0B, 0x11D30},
    {0x11D46, 0x11D46}, {0x11D60, 0x11D65}, {0x11D67, 0x11D68}, {0x11D6A, 0x11D89},
    {0x11D98, 0x11D98}, {0x11DB0, 0x11DDB}, {0x11EE0, 0x11EF2}, {0x11F02, 0x11F02},
    {0x11F04, 0x11F10}, {0x11F12, 0x11F33}, {0x11FB0, 0x11FB0}, {0x12000, 0x12399},
    {0x12480, 0x12543}, {0x12F90, 0x12FF0}, {0x13000, 0x1342F}, {0x13441, 0x13446},
    {0x13460, 0x143FA}, {0x14400, 0x14646}, {0x16100, 0x1611D}, {0x16800, 0x16A38},
    {0x16A40, 0x16A5E}, {0x16A70, 0x16ABE}, {0x16AD0, 0x16AED}, {0x16B00, 0x16B2F},
    {0x16B40, 0x16B43}, {0x16B63, 0x16B77}, {0x16B7D, 0x16B8F}, {0x16D40, 0x16D6C},
    {0x16E40, 0x16E7F}, {0x16EA0, 0x16EB8}, {0x16EBB, 0x16ED3}, {0x16F00, 0x16F4A},
    {0x16F50, 0x16F50}, {0x16F93, 0x16F9F}, {0x16FE0, 0x16FE1}, {0x16FE3, 0x16FE3},
    {0x16FF2, 0x16FF3}, {0x17000, 0x18CD5}, {0x18CFF, 0x18D1E}, {0x18D80, 0x18DF2},
    {0x1AFF0, 0x1AFF3}, {0x1AFF5, 0x1AFFB}, {0x1AFFD, 0x1AFFE}, {0x1B000, 0x1B122},
    {0x1B132, 0x1B132}, {0x1B150, 0x1B152}, {0x1B155, 0x1B155}, {0x1B164, 0x1B167},
    {0x1B170, 0x1B2FB}, {0x1BC00, 0x1BC6A}, {0x1BC70, 0x1BC7C}, {0x1BC80, 0x1BC88},
    {0x1BC90, 0x1BC99}, {0x1D400, 0x1D454}, {0x1D456, 0x1D49C}, {0x1D49E, 0x1D49F},
    {0x1D4A2, 0x1D4A2}, {0x1D4A5, 0x1D4A6}, {0x1D4A9, 0x1D4AC}, {0x1D4AE, 0x1D4B9},
    {0x1D4BB, 0x1D4BB}, {0x1D4BD, 0x1D4C3}, {0x1D4C5, 0x1D505}, {0x1D507, 0x1D50A},
    {0x1D50D, 0x1D514}, {0x1D516, 0x1D51C}, {0x1D51E, 0x1D539}, {0x1D53B, 0x1D53E},
    {0x1D540, 0x1D544}, {0x1D546, 0x1D546}, {0x1D54A, 0x1D550}, {0x1D552, 0x1D6A5},
    {0x1D6A8, 0x1D6C0}, {0x1D6C2, 0x1D6DA}, {0x1D6DC, 0x1D6FA}, {0x1D6FC, 0x1D714},
    {0x1D716, 0x1D734}, {0x1D736, 0x1D74E}, {0x1D750, 0x1D76E}, {0x1D770, 0x1D788},
    {0x1D78A, 0x1D7A8}, {0x1D7AA, 0x1D7C2}, {0x1D7C4, 0x1D7CB}, {0x1DF00, 0x1DF1E},
    {0x1DF25, 0x1DF2A}, {0x1E030, 0x1E06D}, {0x1E100, 0x1E12C}, {0x1E137, 0x1E13D},
    {0x1E14E, 0x1E14E}, {0x1E290, 0x1E2AD}, {0x1E2C0, 0x1E2EB}, {0x1E4D0, 0x1E4EB},
    {0x1E5D0, 0x1E5ED}, {0x1E5F0, 0x1E5F0}, {0x1E6C0, 0x1E6DE}, {0x1E6E0, 0x1E6E2},
    {0x1E6E4, 0x1E6E5}, {0x1E6E7, 0x1E6ED}, {0x1E6F0, 0x1E6F4}, {0x1E6FE, 0x1E6FF},
    {0x1E7E0, 0x1E7E6}, {0x1E7E8, 0x1E7EB}, {0x1E7ED, 0x1E7EE}, {0x1E7F0, 0x1E7FE},
    {0x1E800, 0x1E8C4}, {0x1E900, 0x1E943}, {0x1E94B, 0x1E94B}, {0x1EE00, 0x1EE03},
    {0x1EE05, 0x1EE1F}, {0x1EE21, 0x1EE22}, {0x1EE24, 0x1EE24}, {0x1EE27, 0x1EE27},
    {0x1EE29, 0x1EE32}, {0x1EE34, 0x1EE37}, {0x1EE39, 0x1EE39}, {0x1EE3B, 0x1EE3B},
    {0x1EE42, 0x1EE42}, {0x1EE47, 0x1EE47}, {0x1EE49, 0x1EE49}, {0x1EE4B, 0x1EE4B},
    {0x1EE4D, 0x1EE4F}, {0x1EE51, 0x1EE52}, {0x1EE54, 0x1EE54}, {0x1EE57, 0x1EE57},
    {0x1EE59, 0x1EE59}, {0x1EE5B, 0x1EE5B}, {0x1EE5D, 0x1EE5D}, {0x1EE5F, 0x1EE5F},
    {0x1EE61, 0x1EE62}, {0x1EE64, 0x1EE64}, {0x1EE67, 0x1EE6A}, {0x1EE6C, 0x1EE72},
    {0x1EE74, 0x1EE77}, {0x1EE79, 0x1EE7C}, {0x1EE7E, 0x1EE7E}, {0x1EE80, 0x1EE89},
    {0x1EE8B, 0x1EE9B}, {0x1EEA1, 0x1EEA3}, {0x1EEA5, 0x1EEA9}, {0x1EEAB, 0x1EEBB},
    {0x20000, 0x2A6DF}, {0x2A700, 0x2B81D}, {0x2B820, 0x2CEAD}, {0x2CEB0, 0x2EBE0},
    {0x2EBF0, 0x2EE5D}, {0x2F800, 0x2FA1D}, {0x30000, 0x3134A}, {0x31350, 0x33479},
};
const Range kNumber[] = {  // 146 ranges
    {0x30, 0x39}, {0xB2, 0xB3}, {0xB9, 0xB9}, {0xBC, 0xBE}, {0x660, 0x669}, {0x6F0, 0x6F9},
    {0x7C0, 0x7C9}, {0x966, 0x96F}, {0x9E6, 0x9EF}, {0x9F4, 0x9F9}, {0xA66, 0xA6F}, {0xAE6, 0xAEF},
    {0xB66, 0xB6F}, {0xB72, 0xB77}, {0xBE6, 0xBF2}, {0xC66, 0xC6F}, {0xC78, 0xC7E}, {0xCE6, 0xCEF},
    {0xD58, 0xD5E}, {0xD66, 0xD78}, {0xDE6, 0xDEF}, {0xE50, 0xE59}, {0xED0, 0xED9}, {0xF20, 0xF33},
    {0x1040, 0x1049}, {0x1090, 0x1099}, {0x1369, 0x137C}, {0x16EE, 0x16F0}, {0x17E0, 0x17E9},
    {0x17F0, 0x17F9}, {0x1810, 0x1819}, {0x1946, 0x194F}, {0x19D0, 0x19DA}, {0x1A80, 0x1A89},
    {0x1A90, 0x1A99}, {0x1B50, 0x1B59}, {0x1BB0, 0x1BB9}, {0x1C40, 0x1C49}, {0x1C50, 0x1C59},
    {0x2070, 0x2070}, {0x2074, 0x2079}, {0x2080, 0x2089}, {0x2150, 0x2182}, {0x2185, 0x2189},
    {0x2460, 0x249B}, {0x24EA, 0x24FF}, {0x2776, 0x2793}, {0x2CFD, 0x2CFD}, {0x3007, 0x3007},
    {0x3021, 0x3029}, {0x3038, 0x303A}, {0x3192, 0x3195}, {0x3220, 0x3229}, {0x3248, 0x324F},
    {0x3251, 0x325F}, {0x3280, 0x3289}, {0x32B1, 0x32BF}, {0xA620, 0xA629}, {0xA6E6, 0xA6EF},
    {0xA830, 0xA835}, {0xA8D0, 0xA8D9}, {0xA900, 0xA909}, {0xA9D0, 0xA9D9}, {0xA9F0, 0xA9F9},
    {0xAA50, 0xAA59}, {0xABF0, 0xABF9}, {0xFF10, 0xFF19}, {0x10107, 0x10133}, {0x10140, 0x10178},
    {0x1018A, 0x1018B}, {0x102E1, 0x102FB}, {0x10320, 0x10323}, {0x10341, 0x10341},
    {0x1034A, 0x1034A}, {0x103D1, 0x103D5}, {0x104A0, 0x104A9}, {0x10858, 0x1085F},
    {0x10879, 0x1087F}, {0x108A7, 0x108AF}, {0x108FB, 0x108FF}, {0x10916, 0x1091B},
    {0x109BC, 0x109BD}, {0x109C0, 0x109CF}, {0x109D2, 0x109FF}, {0x10A40, 0x10A48},
    {0x10A7D, 0x10A7E}, {0x10A9D, 0x10A9F}, {0x10AEB, 0x10AEF}, {0x10B58, 0x10B5F},
    {0x10B78, 0x10B7F}, {0x10BA9, 0x10BAF}, {0x10CFA, 0x10CFF}, {0x10D30, 0x10D39},
    {0x10D40, 0x10D49}, {0x10E60, 0x10E7E}, {0x10F1D, 0x10F26}, {0x10F51, 0x10F54},
    {0x10FC5, 0x10FCB}, {0x11052, 0x1106F}, {0x110F0, 0x110F9}, {0x11136, 0x1113F},
    {0x111D0, 0x111D9}, {0x111E1, 0x111F4}, {0x112F0, 0x112F9}, {0x11450, 0x11459},
    {0x114D0, 0x114D9}, {0x11650, 0x11659}, {0x116C0, 0x116C9}, {0x116D0, 0x116E3},
    {0x11730, 0x1173B}, {0x118E0, 0x118F2}, {0x11950, 0x11959}, {0x11BF0, 0x11BF9},
    {0x11C50, 0x11C6C}, {0x11D50, 0x11D59}, {0x11DA0, 0x11DA9}, {0x11DE0, 0x11DE9},
    {0x11F50, 0x11F59}, {0x11FC0, 0x11FD4}, {0x12400, 0x1246E}, {0x16130, 0x16139},
    {0x16A60, 0x16A69}, {0x16AC0, 0x16AC9}, {0x16B50, 0x16B59}, {0x16B5B, 0x16B61},
    {0x16D70, 0x16D79}, {0x16E80, 0x16E96}, {0x16FF4, 0x16FF6}, {0x1CCF0, 0x1CCF9},
    {0x1D2C0, 0x1D2D3}, {0x1D2E0, 0x1D2F3}, {0x1D360, 0x1D378}, {0x1D7CE, 0x1D7FF},
    {0x1E140, 0x1E149}, {0x1E2F0, 0x1E2F9}, {0x1E4F0, 0x1E4F9}, {0x1E5F1, 0x1E5FA},
    {0x1E8C7, 0x1E8CF}, {0x1E950, 0x1E959}, {0x1EC71, 0x1ECAB}, {0x1ECAD, 0x1ECAF},
    {0x1ECB1, 0x1ECB4}, {0x1ED01, 0x1ED2D}, {0x1ED2F, 0x1ED3D}, {0x1F100, 0x1F10C},
    {0x1FBF0, 0x1FBF9},
};

template <size_t N>
bool in_ranges(const Range (&table)[N], uint32_t c) {
  size_t lo = 0, hi = N;
  while (lo < hi) {
    const size_t mid = (lo + hi) / 2;
    if (c < table[mid].lo) hi = mid;
    else if (c > table[mid].hi) lo = mid + 1;
    else return true;
  }
  return false;
}

bool is_letter(uint32_t c) {
  if (c < 0x80) return (c | 0x20) >= 'a' && (c | 0x20) <= 'z';
  return in_ranges(kLetter, c);
}

bool is_number(uint32_t c) {
  if (c < 0x80) return c >= '0' && c <= '9';
  return in_ranges(kNumber, c);
}

// Unicode White_Space (what \s means to Oniguruma, Rust's regex and Python's).
bool is_space(uint32_t c) {
  if (c < 0x80) return c == ' ' || (c >= 0x09 && c <= 0x0D);
  return c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 ||
         c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

bool is_other(uint32_t c) { return !is_space(c) && !is_letter(c) && !is_number(c); }
bool is_crlf(uint32_t c) { return c == '\r' || c == '\n'; }

// Code points that NFC leaves unchanged wherever they stand: NFC_Quick_Check
// Yes and canonical combining class 0, so text made only of them is in NFC.
bool nfc_stable(uint32_t c) {
  if (c < 0x300) return true;
  if (c >= 0x370 && c <= 0x3FF) return c != 0x374 && c != 0x37E && c != 0x387;  // Greek
  if (c >= 0x400 && c <= 0x4FF) return c < 0x483 || c > 0x489;                   // Cyrillic
  return (c >= 0x2002 && c <= 0x206F) ||   // general punctuation (not U+2000, U+2001)
         (c >= 0x20A0 && c <= 0x20C0) ||   // currency
         (c >= 0x3000 && c <= 0x3029) ||   // CJK punctuation
         (c >= 0x3041 && c <= 0x3096) ||   // hiragana (not the combining U+3099, U+309A)
         (c >= 0x309B && c <= 0x30FF) ||   // katakana
         (c >= 0x4E00 && c <= 0x9FFF) ||   // CJK unified ideographs
         (c >= 0xAC00 && c <= 0xD7A3) ||   // Hangul syllables
         (c >= 0xFF01 && c <= 0xFF60) ||   // fullwidth forms
         (c >= 0x1F300 && c <= 0x1FAFF);   // emoji and pictographs
}

// ---- UTF-8 ----
// Length of the well-formed UTF-8 sequence at s[i] (and its code point), or 0.
size_t utf8_next(const std::string& s, size_t i, uint32_t* cp) {
  const auto b = [&](size_t k) { return static_cast<uint8_t>(s[k]); };
  const size_t n = s.size();
  const uint8_t c = b(i);
  if (c < 0x80) { *cp = c; return 1; }
  size_t len;
  uint32_t v;
  uint8_t lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (c >= 0xC2 && c <= 0xDF) { len = 2; v = c & 0x1F; }
  else if (c >= 0xE0 && c <= 0xEF) {
    len = 3; v = c & 0x0F;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;  // no surrogates
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4; v = c & 0x07;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  if (i + len > n) return 0;
  for (size_t k = 1; k < len; ++k) {
    const uint8_t t = b(i + k);
    if (k == 1 ? (t < lo || t > hi) : (t < 0x80 || t > 0xBF)) return 0;
    v = (v << 6) | (t & 0x3F);
  }
  *cp = v;
  return len;
}

void append_utf8(std::string& out, uint32_t c) {
  if (c < 0x80) {
    out += static_cast<char>(c);
  } else if (c < 0x800) {
    out += static_cast<char>(0xC0 | (c >> 6));
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else if (c < 0x10000) {
    out += static_cast<char>(0xE0 | (c >> 12));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (c >> 18));
    out += static_cast<char>(0x80 | ((c >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  }
}

// Bytes to text as Rust's String::from_utf8_lossy: each maximal invalid
// subpart becomes one U+FFFD.
std::string utf8_lossy(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    uint32_t cp;
    const size_t len = utf8_next(s, i, &cp);
    if (len) {
      out.append(s, i, len);
      i += len;
      continue;
    }
    // Skip the longest prefix of a well-formed sequence (at least one byte).
    const uint8_t c = static_cast<uint8_t>(s[i]);
    size_t need = c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 1;
    size_t k = 1;
    for (; k < need && i + k < s.size(); ++k) {
      const uint8_t t = static_cast<uint8_t>(s[i + k]);
      uint8_t lo = 0x80, hi = 0xBF;
      if (k == 1) {
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
      }
      if (t < lo || t > hi) break;
    }
    out += "\xEF\xBF\xBD";
    i += k;
  }
  return out;
}

// ---- GPT-2's byte-to-unicode map ----
// Printable bytes ('!'..'~', '¡'..'¬', '®'..'ÿ') stand for themselves; the
// others become U+0100 + n in byte order.
struct ByteMap {
  uint32_t to_char[256];
  int16_t to_byte[0x144];  // -1 where no byte maps to the code point
  ByteMap() {
    std::fill(std::begin(to_byte), std::end(to_byte), int16_t(-1));
    uint32_t n = 0;
    for (uint32_t b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      to_char[b] = printable ? b : 0x100 + n++;
      to_byte[to_char[b]] = static_cast<int16_t>(b);
    }
  }
};
const ByteMap& byte_map() {
  static const ByteMap m;
  return m;
}

std::string byte_level(const std::string& bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char b : bytes) append_utf8(out, byte_map().to_char[b]);
  return out;
}

// ---- the pre-tokenization patterns, by hand ----
enum class Pattern { Gpt2, Llama3, Qwen2 };

const char* const kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
const char* const kGpt2PatternTiktoken =  // tiktoken's r50k_base spelling of the same
    R"('(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
const char* const kLlama3Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
const char* const kQwen2Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

// ASCII lower case, and U+017F (long s), which (?i) folds to s.
uint32_t fold(uint32_t c) {
  if (c >= 'A' && c <= 'Z') return c + 32;
  if (c == 0x17F) return 's';
  return c;
}

// End of the contraction at i ('s 't 're 've 'm 'll 'd), or i if none.
size_t contraction(const std::vector<uint32_t>& cp, size_t i, bool ignore_case) {
  const size_t n = cp.size();
  if (cp[i] != '\'' || i + 1 >= n) return i;
  const auto f = [&](uint32_t c) { return ignore_case ? fold(c) : c; };
  const uint32_t a = f(cp[i + 1]);
  if (a == 's' || a == 't' || a == 'm' || a == 'd') return i + 2;
  if (i + 2 < n) {
    const uint32_t b = f(cp[i + 2]);
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return i + 3;
  }
  return i;
}

template <class Pred>
size_t run(const std::vector<uint32_t>& cp, size_t j, Pred pred) {
  while (j < cp.size() && pred(cp[j])) ++j;
  return j;
}

// \s+(?!\S)|\s+ at a whitespace code point i.
size_t whitespace(const std::vector<uint32_t>& cp, size_t i) {
  const size_t j = run(cp, i, is_space);
  if (j == cp.size() || j - 1 == i) return j;  // to the end, or a single space before \S
  return j - 1;                                // leave the last space to the next word
}

// End of the match at i (leftmost-first alternation, as the regex engines).
size_t match_gpt2(const std::vector<uint32_t>& cp, size_t i) {
  const size_t n = cp.size();
  if (size_t e = contraction(cp, i, false); e > i) return e;
  const size_t j = cp[i] == ' ' ? i + 1 : i;  // " ?"
  if (j < n) {
    if (is_letter(cp[j])) return run(cp, j, is_letter);
    if (is_number(cp[j])) return run(cp, j, is_number);
    if (is_other(cp[j])) return run(cp, j, is_other);
  }
  return whitespace(cp, i);  // cp[i] is whitespace here
}

size_t match_llama3(const std::vector<uint32_t>& cp, size_t i, size_t max_digits) {
  const size_t n = cp.size();
  const uint32_t c = cp[i];
  if (size_t e = contraction(cp, i, true); e > i) return e;
  // [^\r\n\p{L}\p{N}]?\p{L}+
  if (!is_letter(c) && !is_number(c) && !is_crlf(c) && i + 1 < n && is_letter(cp[i + 1]))
    return run(cp, i + 1, is_letter);
  if (is_letter(c)) return run(cp, i, is_letter);
  // \p{N}{1,max}
  if (is_number(c)) {
    size_t j = i;
    while (j < n && j - i < max_digits && is_number(cp[j])) ++j;
    return j;
  }
  // " ?[^\s\p{L}\p{N}]+[\r\n]*"
  const size_t j = c == ' ' ? i + 1 : i;
  if (j < n && is_other(cp[j])) return run(cp, run(cp, j, is_other), is_crlf);
  // \s*[\r\n]+ : the whitespace run up to and with its last CR or LF
  const size_t end = run(cp, i, is_space);
  for (size_t k = end; k > i; --k)
    if (is_crlf(cp[k - 1])) return k;
  return whitespace(cp, i);
}

// Splits code points into the pieces the pattern matches (they cover all of
// it: every code point is whitespace, a letter, a number or another symbol).
std::vector<std::string> split(const std::string& text, Pattern p) {
  std::vector<uint32_t> cp;
  std::vector<size_t> at;  // byte offset of each code point, and the end
  for (size_t i = 0; i < text.size();) {
    uint32_t c;
    const size_t len = utf8_next(text, i, &c);
    cp.push_back(c);
    at.push_back(i);
    i += len;  // text was checked to be UTF-8
  }
  at.push_back(text.size());
  std::vector<std::string> out;
  for (size_t i = 0; i < cp.size();) {
    const size_t e = p == Pattern::Gpt2 ? match_gpt2(cp, i) : match_llama3(cp, i, p == Pattern::Llama3 ? 3 : 1);
    out.push_back(text.substr(at[i], at[e] - at[i]));
    i = e;
  }
  return out;
}

// ---- tokenizer.json fields ----
[[noreturn]] void fail(const std::string& file, const std::string& field, const std::string& msg) {
  throw Error(file + ": " + field + ": " + msg);
}

std::string brief(const json& j) {
  std::string s = j.dump();
  return s.size() > 80 ? s.substr(0, 77) + "..." : s;
}

bool get_bool(const json& obj, const char* key, bool def, const std::string& file, const std::string& field) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return def;
  if (!it->is_boolean()) fail(file, field + "." + key, "expected true or false, got " + brief(*it));
  return it->get<bool>();
}

std::string get_type(const json& obj, const std::string& file, const std::string& field) {
  if (!obj.is_object()) fail(file, field, "expected an object, got " + brief(obj));
  auto it = obj.find("type");
  if (it == obj.end() || !it->is_string()) fail(file, field + ".type", "missing or not a string");
  return it->get<std::string>();
}

int32_t get_id(const json& j, const std::string& file, const std::string& field) {
  if (!j.is_number_integer() || j.get<int64_t>() < 0 || j.get<int64_t>() > INT32_MAX)
    fail(file, field, "expected a token id (a non-negative integer), got " + brief(j));
  return static_cast<int32_t>(j.get<int64_t>());
}

// Empty or null: the field is not used.
bool unset_string(const json& obj, const char* key) {
  auto it = obj.find(key);
  return it == obj.end() || it->is_null() || (it->is_string() && it->get<std::string>().empty());
}

}  // namespace

struct BpeTokenizer::Impl {
  std::string path;
  std::unordered_map<std::string, int32_t> vocab;  // model vocab
  std::vector<std::string> tokens;                 // by id ("" where none)
  std::vector<uint8_t> defined, special;           // by id
  std::unordered_map<uint64_t, std::pair<int32_t, int32_t>> merges;  // (left, right) -> (rank, merged)
  int32_t byte_id[256];
  bool ignore_merges = false;
  bool nfc = false;
  std::vector<Pattern> splits;  // Split pre-tokenizers, in order
  bool add_prefix_space = false, byte_level_regex = true;
  struct Added {
    std::string content;
    int32_t id;
  };
  std::vector<Added> added_raw, added_normalized;  // longest first
  std::unordered_map<std::string, int32_t> added_ids;
  std::vector<int32_t> prefix, suffix;

  mutable std::mutex cache_mu;
  mutable std::unordered_map<std::string, std::vector<int32_t>> cache;

  // The tables above are indexed by id, so the largest id sizes them: ids may
  // leave holes, but not more than the file has tokens (parse sets the limit),
  // or one stray id (12655555 in a 300-token file) would allocate hundreds of MB.
  size_t id_limit = 0;

  void define(int32_t id, const std::string& tok, const std::string& field) {
    if (static_cast<size_t>(id) >= id_limit)
      fail(path, field, "id " + std::to_string(id) + " is far beyond the file's tokens (at most 2 x their number + 1024: " +
                            std::to_string(id_limit - 1) + ")");
    if (static_cast<size_t>(id) >= tokens.size()) {
      tokens.resize(id + 1);
      defined.resize(id + 1, 0);
      special.resize(id + 1, 0);
    }
    tokens[id] = tok;
    defined[id] = 1;
  }

  void bpe(const std::string& piece, std::vector<int32_t>& out) const;
  void encode_segment(const std::string& text, std::vector<int32_t>& out) const;
  void check_nfc(const std::string& text) const;
};

namespace {

void parse_model(BpeTokenizer::Impl& t, const json& m, const std::string& file) {
  const std::string type = get_type(m, file, "model");
  if (type != "BPE") fail(file, "model.type", "\"" + type + "\" is not supported (only BPE)");
  if (get_bool(m, "byte_fallback", false, file, "model"))
    fail(file, "model.byte_fallback", "true is not supported (byte-level BPE only)");
  if (auto it = m.find("dropout"); it != m.end() && !it->is_null())
    fail(file, "model.dropout", brief(*it) + " is not supported (only null)");
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"})
    if (!unset_string(m, key)) fail(file, std::string("model.") + key, brief(m[key]) + " is not supported");
  t.ignore_merges = get_bool(m, "ignore_merges", false, file, "model");

  auto v = m.find("vocab");
  if (v == m.end() || !v->is_object()) fail(file, "model.vocab", "missing or not an object");
  for (auto it = v->begin(); it != v->end(); ++it) {
    const int32_t id = get_id(it.value(), file, "model.vocab[\"" + it.key() + "\"]");
    if (static_cast<size_t>(id) < t.defined.size() && t.defined[id])
      fail(file, "model.vocab", "id " + std::to_string(id) + " is given to both \"" + t.tokens[id] +
                                    "\" and \"" + it.key() + "\"");
    t.vocab[it.key()] = id;
    t.define(id, it.key(), "model.vocab");
  }
  const ByteMap& bm = byte_map();
  for (int b = 0; b < 256; ++b) {
    std::string s;
    append_utf8(s, bm.to_char[b]);
    auto it = t.vocab.find(s);
    if (it == t.vocab.end()) {
      char hex[8];
      std::snprintf(hex, sizeof hex, "0x%02X", b);
      fail(file, "model.vocab", std::string("no token for byte ") + hex + " (\"" + s +
                                    "\"): not a byte-level BPE vocabulary");
    }
    t.byte_id[b] = it->second;
  }

  auto ms = m.find("merges");
  if (ms == m.end() || !ms->is_array()) fail(file, "model.merges", "missing or not an array");
  int32_t rank = 0;
  for (const auto& e : *ms) {
    const std::string field = "model.merges[" + std::to_string(rank) + "]";
    std::string a, b;
    if (e.is_string()) {
      const std::string s = e.get<std::string>();
      const size_t sp = s.find(' ');
      if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos)
        fail(file, field, "expected \"left right\", got " + brief(e));
      a = s.substr(0, sp);
      b = s.substr(sp + 1);
    } else if (e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string()) {
      a = e[0].get<std::string>();
      b = e[1].get<std::string>();
    } else {
      fail(file, field, "expected \"left right\" or [left, right], got " + brief(e));
    }
    auto ia = t.vocab.find(a), ib = t.vocab.find(b), iab = t.vocab.find(a + b);
    if (ia == t.vocab.end() || ib == t.vocab.end() || iab == t.vocab.end())
      fail(file, field, "\"" + (ia == t.vocab.end() ? a : ib == t.vocab.end() ? b : a + b) +
                            "\" is not in model.vocab");
    const uint64_t key = (uint64_t(uint32_t(ia->second)) << 32) | uint32_t(ib->second);
    t.merges.emplace(key, std::make_pair(rank, iab->second));  // the first (lowest) rank wins
    ++rank;
  }
}

void parse_added(BpeTokenizer::Impl& t, const json& root, const std::string& file) {
  auto at = root.find("added_tokens");
  if (at == root.end() || at->is_null()) return;
  if (!at->is_array()) fail(file, "added_tokens", "expected an array, got " + brief(*at));
  for (size_t i = 0; i < at->size(); ++i) {
    const json& e = (*at)[i];
    const std::string field = "added_tokens[" + std::to_string(i) + "]";
    if (!e.is_object()) fail(file, field, "expected an object, got " + brief(e));
    auto c = e.find("content");
    if (c == e.end() || !c->is_string() || c->get<std::string>().empty())
      fail(file, field + ".content", "missing, empty or not a string");
    auto idj = e.find("id");
    if (idj == e.end()) fail(file, field + ".id", "missing");
    const int32_t id = get_id(*idj, file, field + ".id");
    for (const char* key : {"single_word", "lstrip", "rstrip"})
      if (get_bool(e, key, false, file, field))
        fail(file, field + "." + key, "true is not supported");
    const std::string content = c->get<std::string>();
    if (!t.added_ids.emplace(content, id).second)
      fail(file, field + ".content", "\"" + content + "\" is added twice");
    t.define(id, content, field + ".id");
    t.special[id] = get_bool(e, "special", false, file, field);
    // tokenizers' default for "normalized" is !special
    const bool normalized = get_bool(e, "normalized", !t.special[id], file, field);
    (normalized ? t.added_normalized : t.added_raw).push_back({content, id});
  }
  for (auto* list : {&t.added_raw, &t.added_normalized})
    std::stable_sort(list->begin(), list->end(),
                     [](const auto& x, const auto& y) { return x.content.size() > y.content.size(); });
}

void parse_normalizer(BpeTokenizer::Impl& t, const json& root, const std::string& file) {
  auto n = root.find("normalizer");
  if (n == root.end() || n->is_null()) return;
  std::vector<std::pair<const json*, std::string>> todo{{&*n, "normalizer"}};
  const std::string type = get_type(*n, file, "normalizer");
  if (type == "Sequence") {
    todo.clear();
    auto list = n->find("normalizers");
    if (list == n->end() || !list->is_array()) fail(file, "normalizer.normalizers", "missing or not an array");
    for (size_t i = 0; i < list->size(); ++i)
      todo.push_back({&(*list)[i], "normalizer.normalizers[" + std::to_string(i) + "]"});
  }
  for (const auto& [j, field] : todo) {
    const std::string ty = get_type(*j, file, field);
    if (ty != "NFC") fail(file, field + ".type", "\"" + ty + "\" is not supported (only null or NFC)");
    t.nfc = true;
  }
}

Pattern split_pattern(const json& s, const std::string& file, const std::string& field) {
  auto behavior = s.find("behavior");
  if (behavior == s.end() || *behavior != "Isolated")
    fail(file, field + ".behavior", (behavior == s.end() ? std::string("missing") : brief(*behavior)) +
                                        " is not supported (only \"Isolated\")");
  if (get_bool(s, "invert", false, file, field)) fail(file, field + ".invert", "true is not supported");
  auto p = s.find("pattern");
  if (p == s.end() || !p->is_object() || !p->contains("Regex") || !(*p)["Regex"].is_string())
    fail(file, field + ".pattern", "expected {\"Regex\": ...}, got " + (p == s.end() ? "nothing" : brief(*p)));
  const std::string re = (*p)["Regex"].get<std::string>();
  if (re == kGpt2Pattern || re == kGpt2PatternTiktoken) return Pattern::Gpt2;
  if (re == kLlama3Pattern) return Pattern::Llama3;
  if (re == kQwen2Pattern) return Pattern::Qwen2;
  fail(file, field + ".pattern", "the regex " + brief((*p)["Regex"]) +
                                     " is not supported (only GPT-2's, Llama 3's and Qwen2's)");
}

void parse_byte_level(BpeTokenizer::Impl& t, const json& b, const std::string& file, const std::string& field) {
  t.add_prefix_space = get_bool(b, "add_prefix_space", false, file, field);
  t.byte_level_regex = get_bool(b, "use_regex", true, file, field);
}

void parse_pre_tokenizer(BpeTokenizer::Impl& t, const json& root, const std::string& file) {
  auto p = root.find("pre_tokenizer");
  if (p == root.end() || p->is_null())
    fail(file, "pre_tokenizer", "null is not supported (byte-level BPE needs a ByteLevel pre-tokenizer)");
  const std::string type = get_type(*p, file, "pre_tokenizer");
  if (type == "ByteLevel") return parse_byte_level(t, *p, file, "pre_tokenizer");
  if (type != "Sequence")
    fail(file, "pre_tokenizer.type", "\"" + type + "\" is not supported (only ByteLevel, or a Sequence of Split and ByteLevel)");
  auto list = p->find("pretokenizers");
  if (list == p->end() || !list->is_array() || list->empty())
    fail(file, "pre_tokenizer.pretokenizers", "missing, empty or not an array");
  for (size_t i = 0; i < list->size(); ++i) {
    const std::string field = "pre_tokenizer.pretokenizers[" + std::to_string(i) + "]";
    const json& e = (*list)[i];
    const std::string ty = get_type(e, file, field);
    const bool last = i + 1 == list->size();
    if (ty == "Split" && !last) {
      t.splits.push_back(split_pattern(e, file, field));
    } else if (ty == "ByteLevel" && last) {
      parse_byte_level(t, e, file, field);
    } else {
      fail(file, field + ".type", "\"" + ty + "\" is not supported here (only Split pre-tokenizers followed by one ByteLevel)");
    }
  }
}

void parse_post_processor(BpeTokenizer::Impl& t, const json& pp, const std::string& file, const std::string& field) {
  if (pp.is_null()) return;
  const std::string type = get_type(pp, file, field);
  if (type == "ByteLevel") return;
  if (type == "Sequence") {
    auto list = pp.find("processors");
    if (list == pp.end() || !list->is_array()) fail(file, field + ".processors", "missing or not an array");
    for (size_t i = 0; i < list->size(); ++i)
      parse_post_processor(t, (*list)[i], file, field + ".processors[" + std::to_string(i) + "]");
    return;
  }
  if (type != "TemplateProcessing")
    fail(file, field + ".type", "\"" + type + "\" is not supported (only ByteLevel, TemplateProcessing or a Sequence of them)");
  auto single = pp.find("single");
  if (single == pp.end() || !single->is_array()) fail(file, field + ".single", "missing or not an array");
  auto specials = pp.find("special_tokens");
  bool seen_text = false;
  for (size_t i = 0; i < single->size(); ++i) {
    const json& e = (*single)[i];
    const std::string f = field + ".single[" + std::to_string(i) + "]";
    if (e.is_object() && e.contains("Sequence")) {
      if (seen_text) fail(file, f, "a second sequence is not supported");
      seen_text = true;
    } else if (e.is_object() && e.contains("SpecialToken") && e["SpecialToken"].contains("id") &&
               e["SpecialToken"]["id"].is_string()) {
      const std::string name = e["SpecialToken"]["id"].get<std::string>();
      if (specials == pp.end() || !specials->is_object() || !specials->contains(name) ||
          !(*specials)[name].contains("ids") || !(*specials)[name]["ids"].is_array())
        fail(file, field + ".special_tokens", "no ids for \"" + name + "\"");
      for (const auto& id : (*specials)[name]["ids"])
        (seen_text ? t.suffix : t.prefix).push_back(get_id(id, file, field + ".special_tokens[\"" + name + "\"].ids"));
    } else {
      fail(file, f, "expected a Sequence or a SpecialToken, got " + brief(e));
    }
  }
}

void parse_decoder(const json& root, const std::string& file) {
  auto d = root.find("decoder");
  if (d == root.end() || d->is_null()) fail(file, "decoder", "null is not supported (only ByteLevel)");
  const std::string type = get_type(*d, file, "decoder");
  if (type != "ByteLevel") fail(file, "decoder.type", "\"" + type + "\" is not supported (only ByteLevel)");
}

// Splits text on the added tokens (leftmost, then longest); calls text(s) for
// each stretch between them and token(id) for each match, in order.
template <class OnText, class OnToken>
void split_added(const std::vector<BpeTokenizer::Impl::Added>& added, const std::string& s, OnText text,
                 OnToken token) {
  if (added.empty()) {
    if (!s.empty()) text(s);
    return;
  }
  size_t start = 0;
  for (size_t i = 0; i < s.size();) {
    const BpeTokenizer::Impl::Added* hit = nullptr;
    for (const auto& a : added)  // longest first
      if (a.content[0] == s[i] && s.compare(i, a.content.size(), a.content) == 0) {
        hit = &a;
        break;
      }
    if (!hit) {
      ++i;
      continue;
    }
    if (i > start) text(s.substr(start, i - start));
    token(hit->id);
    i += hit->content.size();
    start = i;
  }
  if (start < s.size()) text(s.substr(start));
}

}  // namespace

void BpeTokenizer::Impl::check_nfc(const std::string& text) const {
  for (size_t i = 0; i < text.size();) {
    uint32_t c;
    i += utf8_next(text, i, &c);
    if (!nfc_stable(c)) {
      char hex[16];
      std::snprintf(hex, sizeof hex, "U+%04X", c);
      throw Error(path + ": normalizer: NFC is applied only to text it leaves unchanged; the text has " + hex +
                  ", outside the NFC-stable ranges ropelab handles (see data/bpe_tokenizer.h)");
    }
  }
}

// One pre-tokenized piece (raw bytes) to ids, by merge rank: the lowest-ranked
// adjacent pair first, the leftmost of equal ones (as GPT-2 and tokenizers).
void BpeTokenizer::Impl::bpe(const std::string& piece, std::vector<int32_t>& out) const {
  {
    std::lock_guard<std::mutex> lock(cache_mu);
    auto it = cache.find(piece);
    if (it != cache.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<int32_t> ids;
  if (ignore_merges) {
    auto it = vocab.find(byte_level(piece));
    if (it != vocab.end()) ids.push_back(it->second);
  }
  if (ids.empty()) {
    struct Sym {
      int32_t id;
      int prev, next;
    };
    std::vector<Sym> sym(piece.size());
    for (size_t i = 0; i < piece.size(); ++i)
      sym[i] = {byte_id[static_cast<unsigned char>(piece[i])], int(i) - 1, i + 1 < piece.size() ? int(i + 1) : -1};
    struct Cand {
      int32_t rank;
      int pos;
      int32_t left, right;
      bool operator>(const Cand& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
    };
    std::priority_queue<Cand, std::vector<Cand>, std::greater<Cand>> heap;
    const auto push = [&](int l) {
      if (l < 0 || sym[l].next < 0) return;
      const int32_t a = sym[l].id, b = sym[sym[l].next].id;
      auto it = merges.find((uint64_t(uint32_t(a)) << 32) | uint32_t(b));
      if (it != merges.end()) heap.push({it->second.first, l, a, b});
    };
    for (int i = 0; i + 1 < int(sym.size()); ++i) push(i);
    std::vector<uint8_t> alive(sym.size(), 1);
    while (!heap.empty()) {
      const Cand c = heap.top();
      heap.pop();
      const int r = sym[c.pos].next;
      if (!alive[c.pos] || sym[c.pos].id != c.left || r < 0 || sym[r].id != c.right) continue;  // stale
      sym[c.pos].id = merges.at((uint64_t(uint32_t(c.left)) << 32) | uint32_t(c.right)).second;
      sym[c.pos].next = sym[r].next;
      if (sym[r].next >= 0) sym[sym[r].next].prev = c.pos;
      alive[r] = 0;
      push(sym[c.pos].prev);
      push(c.pos);
    }
    for (int i = sym.empty() ? -1 : 0; i >= 0; i = sym[i].next) ids.push_back(sym[i].id);
  }
  out.insert(out.end(), ids.begin(), ids.end());
  std::lock_guard<std::mutex> lock(cache_mu);
  if (cache.size() >= 200000) cache.clear();  // a bound on memory
  cache.emplace(piece, std::move(ids));
}

// Text between added tokens: the pre-tokenizers, then BPE on each piece.
void BpeTokenizer::Impl::encode_segment(const std::string& text, std::vector<int32_t>& out) const {
  std::vector<std::string> pieces{text};
  for (Pattern p : splits) {
    std::vector<std::string> next;
    for (const auto& s : pieces)
      for (auto& part : split(s, p)) next.push_back(std::move(part));
    pieces = std::move(next);
  }
  for (auto& s : pieces) {
    if (add_prefix_space && s[0] != ' ') s.insert(s.begin(), ' ');
    if (byte_level_regex)
      for (const auto& part : split(s, Pattern::Gpt2)) bpe(part, out);
    else
      bpe(s, out);
  }
}

BpeTokenizer::BpeTokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
BpeTokenizer::~BpeTokenizer() = default;
BpeTokenizer::BpeTokenizer(BpeTokenizer&&) noexcept = default;
BpeTokenizer& BpeTokenizer::operator=(BpeTokenizer&&) noexcept = default;

BpeTokenizer BpeTokenizer::load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot open the tokenizer file");
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw Error(path + ": cannot read the tokenizer file");
  return parse(ss.str(), path);
}

BpeTokenizer BpeTokenizer::parse(const std::string& text, const std::string& file) {
  json root;
  try {
    root = json::parse(text);
  } catch (const json::exception& e) {
    throw Error(file + ": not valid JSON (" + e.what() + ")");
  }
  if (!root.is_object()) throw Error(file + ": not a tokenizer.json (expected a JSON object)");
  auto impl = std::make_unique<Impl>();
  impl->path = file;
  auto model = root.find("model");
  if (model == root.end()) fail(file, "model", "missing");
  size_t entries = 0;  // every token the file defines: the bound on its ids (Impl::define)
  if (model->is_object())
    if (auto v = model->find("vocab"); v != model->end() && v->is_object()) entries += v->size();
  if (auto a = root.find("added_tokens"); a != root.end() && a->is_array()) entries += a->size();
  impl->id_limit = 2 * entries + 1024;
  parse_model(*impl, *model, file);
  parse_added(*impl, root, file);
  parse_normalizer(*impl, root, file);
  parse_pre_tokenizer(*impl, root, file);
  if (auto pp = root.find("post_processor"); pp != root.end())
    parse_post_processor(*impl, *pp, file, "post_processor");
  parse_decoder(root, file);
  for (int32_t id : impl->prefix)
    if (size_t(id) >= impl->defined.size() || !impl->defined[id])
      fail(file, "post_processor", "template token id " + std::to_string(id) + " is not a token");
  for (int32_t id : impl->suffix)
    if (size_t(id) >= impl->defined.size() || !impl->defined[id])
      fail(file, "post_processor", "template token id " + std::to_string(id) + " is not a token");
  return BpeTokenizer(std::move(impl));
}

std::vector<int32_t> BpeTokenizer::encode(const std::string& text, bool add_special_tokens) const {
  const Impl& t = *impl_;
  for (size_t i = 0; i < text.size();) {
    uint32_t c;
    const size_t len = utf8_next(text, i, &c);
    if (!len) throw Error(t.path + ": the text to encode is not valid UTF-8 (byte " + std::to_string(i) + ")");
    i += len;
  }
  std::vector<int32_t> out;
  if (add_special_tokens) out = t.prefix;
  const auto on_token = [&](int32_t id) { out.push_back(id); };
  split_added(t.added_raw, text, [&](const std::string& raw) {
    if (t.nfc) t.check_nfc(raw);
    split_added(t.added_normalized, raw, [&](const std::string& s) { t.encode_segment(s, out); }, on_token);
  }, on_token);
  if (add_special_tokens) out.insert(out.end(), t.suffix.begin(), t.suffix.end());
  return out;
}

std::string BpeTokenizer::decode(const std::vector<int32_t>& ids, bool skip_special_tokens) const {
  const Impl& t = *impl_;
  const ByteMap& bm = byte_map();
  std::string bytes;
  for (int32_t id : ids) {
    if (id < 0 || size_t(id) >= t.defined.size() || !t.defined[id])
      throw Error(t.path + ": cannot decode id " + std::to_string(id) + ": not a token of this tokenizer");
    if (skip_special_tokens && t.special[id]) continue;
    // ByteLevel decoder: each character back to its byte; a token with a
    // character outside the byte map stands for its own UTF-8 bytes.
    const std::string& tok = t.tokens[id];
    std::string mapped;
    bool ok = true;
    for (size_t i = 0; i < tok.size() && ok;) {
      uint32_t c;
      const size_t len = utf8_next(tok, i, &c);
      ok = len && c < 0x144 && bm.to_byte[c] >= 0;
      if (ok) mapped += static_cast<char>(bm.to_byte[c]);
      i += len ? len : 1;
    }
    bytes += ok ? mapped : tok;
  }
  return utf8_lossy(bytes);
}

int BpeTokenizer::vocab_size() const { return static_cast<int>(impl_->tokens.size()); }

std::optional<int32_t> BpeTokenizer::token_id(const std::string& token) const {
  if (auto it = impl_->added_ids.find(token); it != impl_->added_ids.end()) return it->second;
  if (auto it = impl_->vocab.find(token); it != impl_->vocab.end()) return it->second;
  return std::nullopt;
}

std::string BpeTokenizer::token(int32_t id) const {
  if (id < 0 || size_t(id) >= impl_->defined.size() || !impl_->defined[id])
    throw Error(impl_->path + ": id " + std::to_string(id) + " is not a token of this tokenizer");
  return impl_->tokens[id];
}

bool BpeTokenizer::is_special(int32_t id) const {
  return id >= 0 && size_t(id) < impl_->special.size() && impl_->special[id];
}

const std::vector<int32_t>& BpeTokenizer::template_prefix() const { return impl_->prefix; }
const std::vector<int32_t>& BpeTokenizer::template_suffix() const { return impl_->suffix; }
const std::string& BpeTokenizer::path() const { return impl_->path; }

}  // namespace ropelab::data
