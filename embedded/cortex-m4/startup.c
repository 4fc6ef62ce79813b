/* Reset and fault handling for the Cortex-M4F harness: the vector table, the FPU
 * switched on before any float instruction, .data copied from flash and .bss
 * zeroed, then main; its return value ends QEMU through semihosting (exit). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

extern uint32_t __data_start__[], __data_end__[], __data_load__[], __bss_start__[], __bss_end__[];
extern uint32_t __stack_top__[];
extern void initialise_monitor_handles(void); /* newlib's rdimon: stdout through semihosting */
int main(void);

void fs_reset_handler(void);
void fs_fault_handler(void);

/* Initial stack pointer, reset, then NMI .. SysTick: every exception is fatal here */
__attribute__((section(".vectors"), used)) static void (*const vectors[16])(void) = {
    (void (*)(void))(uintptr_t)__stack_top__, fs_reset_handler,
    fs_fault_handler, fs_fault_handler, fs_fault_handler, fs_fault_handler, fs_fault_handler,
    0, 0, 0, 0,
    fs_fault_handler, fs_fault_handler, 0, fs_fault_handler, fs_fault_handler,
};

/* Semihosting SYS_EXIT, reason "run-time error": QEMU exits with status 1 */
void fs_fault_handler(void) {
    register uint32_t op __asm__("r0") = 0x18u;
    register uint32_t reason __asm__("r1") = 0x20023u;
    __asm__ volatile("bkpt 0xab" : : "r"(op), "r"(reason) : "memory");
    for (;;) {
    }
}

void fs_reset_handler(void) {
    volatile uint32_t *const cpacr = (volatile uint32_t *)0xE000ED88u;
    *cpacr |= 0xFu << 20; /* CP10, CP11: full access to the FPU */
    __asm__ volatile("dsb\n\tisb" ::: "memory");
    memcpy(__data_start__, __data_load__, (size_t)((char *)__data_end__ - (char *)__data_start__));
    memset(__bss_start__, 0, (size_t)((char *)__bss_end__ - (char *)__bss_start__));
    initialise_monitor_handles();
    exit(main());
}
