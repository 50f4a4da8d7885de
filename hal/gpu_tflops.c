/* gpu_tflops.c: peak FP32 TFLOPS of common render GPUs, by PCI id or by marketing name. */
#include "gpu.h"

#include "cleanup.h"

#include <ctype.h>
#include <math.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>

/* Peak FP32 is the non-tensor (vector) figure: shaders run there, and it is what the product
 * catalog's scales are stated in. PCI ids are from the pci.ids database (pciutils/pciids); an id
 * that names two products with different figures is left out and found by name instead. */

#define PCI_VENDOR_NVIDIA 0x10de
#define PCI_VENDOR_AMD 0x1002

struct tflops_id {
        uint16_t vendor, device;
        double tflops;
};

struct tflops_name {
        const char *name; /* matched as whole words, case-insensitively, first match wins */
        double tflops;
};

static const struct tflops_id by_id[] = {
        /* NVIDIA data center and workstation: "Peak FP32" / "Single-precision performance" in each
         * product's NVIDIA datasheet. */
        { PCI_VENDOR_NVIDIA, 0x1eb8, 8.1 },  /* Tesla T4 */
        { PCI_VENDOR_NVIDIA, 0x2236, 31.2 }, /* A10 */
        { PCI_VENDOR_NVIDIA, 0x25b6, 4.5 },  /* A2 / A16 (each of the A16's four GPUs): 4.5 both */
        { PCI_VENDOR_NVIDIA, 0x2235, 37.4 }, /* A40 */
        { PCI_VENDOR_NVIDIA, 0x27b8, 30.3 }, /* L4 */
        { PCI_VENDOR_NVIDIA, 0x26b5, 90.5 }, /* L40 */
        { PCI_VENDOR_NVIDIA, 0x26b9, 91.6 }, /* L40S */
        { PCI_VENDOR_NVIDIA, 0x24b0, 19.2 }, /* RTX A4000 */
        { PCI_VENDOR_NVIDIA, 0x2231, 27.8 }, /* RTX A5000 */
        { PCI_VENDOR_NVIDIA, 0x2230, 38.7 }, /* RTX A6000 */
        { PCI_VENDOR_NVIDIA, 0x20b0, 19.5 }, /* A100 SXM4 40GB */
        { PCI_VENDOR_NVIDIA, 0x20b1, 19.5 }, /* A100 PCIe 40GB */
        { PCI_VENDOR_NVIDIA, 0x20b2, 19.5 }, /* A100 SXM4 80GB */
        { PCI_VENDOR_NVIDIA, 0x20b5, 19.5 }, /* A100 PCIe 80GB */
        { PCI_VENDOR_NVIDIA, 0x20f1, 19.5 }, /* A100 PCIe 40GB */
        { PCI_VENDOR_NVIDIA, 0x2331, 51.0 }, /* H100 PCIe */
        { PCI_VENDOR_NVIDIA, 0x2330, 67.0 }, /* H100 SXM5 80GB */
        { PCI_VENDOR_NVIDIA, 0x2335, 67.0 }, /* H200 SXM 141GB */
        { PCI_VENDOR_NVIDIA, 0x233b, 60.0 }, /* H200 NVL */

        /* NVIDIA A10G (AWS G5): NVIDIA publishes no datasheet for it and AWS no FP32 figure; the
         * figures quoted elsewhere run from 31.2 to 35. We take the A10's 31.2 as the floor: every
         * catalog threshold is far below either end. */
        { PCI_VENDOR_NVIDIA, 0x2237, 31.2 },

        /* NVIDIA GeForce: the spec pages give CUDA cores and boost clock; peak FP32 is
         * 2 x cores x boost, as in NVIDIA's Ampere (GA102) and Ada whitepapers' "Peak FP32 TFLOPS
         * (non-Tensor)" rows. */
        { PCI_VENDOR_NVIDIA, 0x2503, 12.7 }, /* RTX 3060: 3584 x 1.777 GHz */
        { PCI_VENDOR_NVIDIA, 0x2504, 12.7 }, /* RTX 3060 Lite Hash Rate */
        { PCI_VENDOR_NVIDIA, 0x2487, 12.7 }, /* RTX 3060 (GA104) */
        { PCI_VENDOR_NVIDIA, 0x2544, 12.7 }, /* RTX 3060 */
        { PCI_VENDOR_NVIDIA, 0x2486, 16.2 }, /* RTX 3060 Ti: 4864 x 1.665 GHz */
        { PCI_VENDOR_NVIDIA, 0x2489, 16.2 }, /* RTX 3060 Ti Lite Hash Rate */
        { PCI_VENDOR_NVIDIA, 0x2484, 20.3 }, /* RTX 3070: 5888 x 1.725 GHz */
        { PCI_VENDOR_NVIDIA, 0x2488, 20.3 }, /* RTX 3070 Lite Hash Rate */
        { PCI_VENDOR_NVIDIA, 0x2482, 21.7 }, /* RTX 3070 Ti: 6144 x 1.77 GHz */
        { PCI_VENDOR_NVIDIA, 0x2206, 29.8 }, /* RTX 3080: 8704 x 1.71 GHz */
        { PCI_VENDOR_NVIDIA, 0x2216, 29.8 }, /* RTX 3080 Lite Hash Rate */
        { PCI_VENDOR_NVIDIA, 0x220a, 30.6 }, /* RTX 3080 12GB: 8960 x 1.71 GHz */
        { PCI_VENDOR_NVIDIA, 0x2208, 34.1 }, /* RTX 3080 Ti: 10240 x 1.665 GHz */
        { PCI_VENDOR_NVIDIA, 0x2204, 35.6 }, /* RTX 3090: 10496 x 1.695 GHz */
        { PCI_VENDOR_NVIDIA, 0x2203, 40.0 }, /* RTX 3090 Ti: 10752 x 1.86 GHz */
        { PCI_VENDOR_NVIDIA, 0x2882, 15.1 }, /* RTX 4060: 3072 x 2.46 GHz */
        { PCI_VENDOR_NVIDIA, 0x2803, 22.1 }, /* RTX 4060 Ti: 4352 x 2.535 GHz */
        { PCI_VENDOR_NVIDIA, 0x2805, 22.1 }, /* RTX 4060 Ti 16GB */
        { PCI_VENDOR_NVIDIA, 0x2786, 29.1 }, /* RTX 4070: 5888 x 2.475 GHz */
        { PCI_VENDOR_NVIDIA, 0x2783, 35.5 }, /* RTX 4070 SUPER: 7168 x 2.475 GHz */
        { PCI_VENDOR_NVIDIA, 0x2782, 40.1 }, /* RTX 4070 Ti: 7680 x 2.61 GHz */
        { PCI_VENDOR_NVIDIA, 0x2705, 44.1 }, /* RTX 4070 Ti SUPER: 8448 x 2.61 GHz */
        { PCI_VENDOR_NVIDIA, 0x2704, 48.7 }, /* RTX 4080: 9728 x 2.505 GHz */
        { PCI_VENDOR_NVIDIA, 0x2702, 52.2 }, /* RTX 4080 SUPER: 10240 x 2.55 GHz */
        { PCI_VENDOR_NVIDIA, 0x2703, 52.2 }, /* RTX 4080 SUPER */
        { PCI_VENDOR_NVIDIA, 0x2684, 82.6 }, /* RTX 4090: 16384 x 2.52 GHz */
        { PCI_VENDOR_NVIDIA, 0x2685, 73.5 }, /* RTX 4090 D: 14592 x 2.52 GHz */

        /* AMD: "Peak single precision (FP32)" / "Peak FP32 vector" on AMD's product pages. */
        { PCI_VENDOR_AMD, 0x73a1, 40.55 }, /* Radeon Pro V620 */
        { PCI_VENDOR_AMD, 0x73a3, 17.83 }, /* Radeon PRO W6800 */
        { PCI_VENDOR_AMD, 0x738c, 23.1 },  /* Instinct MI100 */
        { PCI_VENDOR_AMD, 0x738e, 23.1 },  /* Instinct MI100 */
        { PCI_VENDOR_AMD, 0x740f, 22.6 },  /* Instinct MI210 */
        { PCI_VENDOR_AMD, 0x7408, 47.9 },  /* Instinct MI250X */
        { PCI_VENDOR_AMD, 0x74a1, 81.7 },  /* Instinct MI300X */
};

/* Names as drivers report them ("NVIDIA A10G", "Tesla T4", "NVIDIA H100 PCIe", "AMD Instinct
 * MI210"), for ids missing above. The more specific name comes first where one contains another
 * as whole words. Figures and sources as in by_id. */
static const struct tflops_name by_name[] = {
        { "T4", 8.1 },
        { "A10G", 31.2 },
        { "A10", 31.2 },
        { "A2", 4.5 },
        { "A16", 4.5 },
        { "A40", 37.4 },
        { "L4", 30.3 },
        { "L40S", 91.6 },
        { "L40", 90.5 },
        { "RTX A4000", 19.2 },
        { "RTX A5000", 27.8 },
        { "RTX A6000", 38.7 },
        { "A100", 19.5 },
        { "H100 PCIe", 51.0 },
        { "H100 NVL", 60.0 },
        { "H100 80GB HBM3", 67.0 }, /* NVML's name for the SXM5 part */
        { "H200 NVL", 60.0 },
        { "H200", 67.0 },
        { "RTX 3060 Ti", 16.2 },
        { "RTX 3060", 12.7 },
        { "RTX 3070 Ti", 21.7 },
        { "RTX 3070", 20.3 },
        { "RTX 3080 Ti", 34.1 },
        { "RTX 3080", 29.8 },
        { "RTX 3090 Ti", 40.0 },
        { "RTX 3090", 35.6 },
        { "RTX 4060 Ti", 22.1 },
        { "RTX 4060", 15.1 },
        { "RTX 4070 Ti SUPER", 44.1 },
        { "RTX 4070 Ti", 40.1 },
        { "RTX 4070 SUPER", 35.5 },
        { "RTX 4070", 29.1 },
        { "RTX 4080 SUPER", 52.2 },
        { "RTX 4080", 48.7 },
        { "RTX 4090 D", 73.5 },
        { "RTX 4090", 82.6 },
        { "V620", 40.55 },
        { "W6800", 17.83 },
        { "MI100", 23.1 },
        { "MI210", 22.6 },
        { "MI250X", 47.9 },
        { "MI250", 45.3 },
        { "MI300X", 81.7 },
};

/* needle occurs in haystack with no letter or digit on either side ("A10" is not in "A100"). */
static bool has_word(const char *haystack, const char *needle) {
        size_t hl = strlen(haystack), nl = strlen(needle);

        for (size_t k = 0; nl > 0 && k + nl <= hl; k++) {
                if (strncasecmp(haystack + k, needle, nl) != 0)
                        continue;
                if (k > 0 && isalnum((unsigned char)haystack[k - 1]))
                        continue;
                if (k + nl < hl && isalnum((unsigned char)haystack[k + nl]))
                        continue;
                return true;
        }
        return false;
}

double hal_gpu_fp32_tflops(uint16_t pci_vendor, uint16_t pci_device, const char *name) {
        for (size_t k = 0; k < ELEMENTSOF(by_id); k++)
                if (by_id[k].vendor == pci_vendor && by_id[k].device == pci_device)
                        return by_id[k].tflops;
        if (name)
                for (size_t k = 0; k < ELEMENTSOF(by_name); k++)
                        if (has_word(name, by_name[k].name))
                                return by_name[k].tflops;
        return NAN;
}
