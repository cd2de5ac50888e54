/* Entry point of the lx106 build: the ROM loader calls this address after
 * MEM_END. The helper never returns to the ROM, so it moves to its own stack
 * (reserved by helper.ld.S inside the helper's DRAM budget, so the RAM it
 * uses is known in full) and calls the C main. */
	.section .text.entry, "ax"
	.literal_position
	.literal .Lstack_top, _helper_stack_top
	.align	4
	.global	helper_lx106_entry
	.type	helper_lx106_entry, @function
helper_lx106_entry:
	l32r	a1, .Lstack_top
	call0	helper_lx106_main
1:	j	1b
	.size	helper_lx106_entry, . - helper_lx106_entry
