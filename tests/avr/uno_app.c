/* A tiny Uno application for tests/avr/uno-sim (built by
 * build-bootloaders.sh with avr-gcc): it prints a banner at 115200 baud
 * when it starts, so a test can see that leaving the bootloader started the
 * application, then echoes every received byte after "echo: ". */
#include <avr/io.h>
#include <avr/wdt.h>

static void put(char c)
{
	while (!(UCSR0A & _BV(UDRE0)))
		;
	UDR0 = c;
}

static void puts_uart(const char *s)
{
	while (*s)
		put(*s++);
}

int main(void)
{
	/* a watchdog reset leaves the watchdog running */
	MCUSR = 0;
	wdt_disable();
	UCSR0A = _BV(U2X0);
	UBRR0 = 16; /* 117647 baud at 16 MHz, as Optiboot */
	UCSR0C = _BV(UCSZ01) | _BV(UCSZ00);
	UCSR0B = _BV(RXEN0) | _BV(TXEN0);
	puts_uart("flashwise uno app\r\n");
	for (;;) {
		if (UCSR0A & _BV(RXC0)) {
			char c = UDR0;

			puts_uart("echo: ");
			put(c);
			puts_uart("\r\n");
		}
	}
}
